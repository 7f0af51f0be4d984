"""One schema at the boundary: a stored or given configuration of the wrong shape is refused with a
message naming the setting (issue 14, item 7), on the command line with exit 2."""

from __future__ import annotations

import json

import pytest

from tl_desktop.cli import main
from tl_desktop.config import ConfigError, RunConfig

REFUSED = [
    ([1, 2], "must be a JSON object of sections, got a list"),
    ("train", "must be a JSON object of sections, got text"),
    ({"train": {"epochs": "ten"}}, "train.epochs must be a whole number, got 'ten'"),
    ({"train": {"epochs": 2.5}}, "train.epochs must be a whole number, got 2.5"),
    ({"train": {"lr": float("nan")}}, "train.lr must be a finite number, got nan"),
    ({"train": {"lr": True}}, "train.lr must be a finite number, got True"),
    ({"train": [1]}, "the train settings must be a JSON object, got a list"),
    ({"model": {"dropout": "abc"}}, "model.dropout must be a finite number, got 'abc'"),
    ({"model": {"trainable_blocks": "most"}}, "model.trainable_blocks must be a whole number or 'all', got 'most'"),
    ({"model": {"weights_file": 3}}, "model.weights_file must be text or null, got 3"),
    ({"data": {"root": ["a"]}}, "data.root must be text, got ['a']"),
    ({"out_dir": 3}, "out_dir must be text, got the number 3"),
    ({"schema_version": "1"}, "schema_version must be a whole number, got '1'"),
]


@pytest.mark.parametrize("raw,message", REFUSED, ids=[m.split(" must")[0] for _, m in REFUSED])
def test_a_value_of_the_wrong_type_is_refused_naming_the_setting(raw, message):
    with pytest.raises(ConfigError) as caught:
        RunConfig.from_dict(raw)
    assert message in str(caught.value)


def test_values_of_the_right_types_are_kept():
    raw = {"train": {"lr": 1, "num_workers": None, "epochs": 4}, "model": {"trainable_blocks": "all"}}
    config = RunConfig.from_dict(raw).validate()
    assert (config.train.lr, config.train.num_workers, config.model.trainable_blocks) == (1, None, "all")
    assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


@pytest.mark.parametrize("content,message", [
    ('{"train": {"epochs": "ten"}}', "train.epochs must be a whole number"),
    ("[1, 2]", "must be a JSON object of sections"),
    ("{not json", "cannot read configuration"),
])
def test_train_with_a_bad_config_file_exits_2_with_one_line(tmp_path, capsys, content, message):
    config = tmp_path / "settings.json"
    config.write_text(content, encoding="utf-8")
    (tmp_path / "images").mkdir()
    code = main(["train", "--data", str(tmp_path / "images"), "--config", str(config), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_predict_refuses_a_batch_size_of_zero(tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["predict", "--model", str(tmp_path / "m.tlmodel"), str(tmp_path), "--batch-size", "0"])
    assert caught.value.code == 2 and "--batch-size: must be 1 or more, got 0" in capsys.readouterr().err


def test_train_on_a_missing_gpu_exits_2_before_any_run_folder(tmp_path, capsys, monkeypatch, make_image_folder):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    root = make_image_folder(tmp_path, classes={"a": 3, "b": 3}, size=32)
    code = main(["train", "--data", str(root), "--device", "cuda", "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and "PyTorch sees no CUDA GPU" in err and not (tmp_path / "runs").exists()

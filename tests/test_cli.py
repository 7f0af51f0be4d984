"""``tl-desktop train`` and ``predict`` end to end in a subprocess, plus exit codes for bad input.

A subprocess cannot see pytest fixtures, so it runs a small launcher script that registers the
tiny test backbone (from tests/engine/conftest.py, through the real registry code path) and then
calls ``tl_desktop.cli.main`` — the same function the ``tl-desktop`` console script calls.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tl_desktop.cli import build_parser, main
from tl_desktop.commands.train import build_config

ENGINE_CONFTEST = Path(__file__).parent / "engine" / "conftest.py"



@pytest.fixture
def tiny_in_process(tmp_path):
    """Register the tiny test backbone in this process (tests/engine's fixture is not visible here)."""
    import importlib.util

    import torch
    from safetensors.torch import save_file

    from tl_desktop.engine.models.backbones import (
        register_backbone,
        unregister_backbone,
    )

    spec = importlib.util.spec_from_file_location("tiny_backbone_conftest", ENGINE_CONFTEST)
    tiny = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tiny)
    weights = tmp_path / "tiny.safetensors"
    torch.manual_seed(1234)
    save_file({k: v.contiguous() for k, v in tiny.build_tiny_cnn().source.state_dict().items()}, str(weights))
    register_backbone(tiny.TINY_SPEC, tiny.build_tiny_cnn, bundled=lambda: weights)
    yield tiny.TINY_SPEC
    unregister_backbone(tiny.TINY_SPEC.name)


@pytest.fixture
def launcher(tiny_launcher) -> Path:
    return tiny_launcher


def run_cli(launcher: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(launcher), *args], capture_output=True, text=True, timeout=180,
                          env={**os.environ, **(env or {})})


def train_args(root: Path, out: Path, epochs: int = 2) -> list[str]:
    return ["train", "--data", str(root), "--backbone", "tiny_cnn", "--trainable-blocks", "1",
            "--epochs", str(epochs), "--head-epochs", "1", "--batch-size", "4", "--out", str(out)]


def test_train_then_predict_end_to_end(launcher, tmp_path, make_image_folder):
    root = make_image_folder(tmp_path, classes={"cats": 8, "dogs": 8}, size=40)
    trained = run_cli(launcher, *train_args(root, tmp_path / "runs"))
    assert trained.returncode == 0, trained.stderr
    out = trained.stdout
    assert "cats" in out and "dogs" in out  # the audit's per-class summary
    assert "epoch 1/2 [head]" in out and "epoch 2/2 [finetune]" in out and "ETA" in out
    model_file = next((tmp_path / "runs").glob("*-tiny_cnn/model.tlmodel"))
    assert f"Model saved to {model_file}" in out

    (root / "cats" / "broken.jpg").write_bytes(b"not an image")
    table = tmp_path / "predictions.csv"
    folder = run_cli(launcher, "predict", "--model", str(model_file.parent), str(root), "--csv", str(table))
    assert folder.returncode == 0, folder.stderr
    rows = list(csv.reader(table.open(encoding="utf-8")))
    assert rows[0] == ["path", "label", "probability", "cats", "dogs", "error"]
    assert len(rows) == 1 + 16 + 1
    broken = [r for r in rows if r[0].endswith("broken.jpg")]
    assert broken and broken[0][-1] and broken[0][1] == ""
    good = [r for r in rows[1:] if not r[-1]]
    assert all(r[1] in ("cats", "dogs") and abs(float(r[3]) + float(r[4]) - 1) < 1e-5 for r in good)


def test_predict_one_image_prints_top_k(tiny_in_process, tmp_path, capsys, make_image_folder):
    from tl_desktop.engine.models.backbones import create_model
    from tl_desktop.engine.models.bundle import BundleMeta, load_bundle, save_bundle

    root = make_image_folder(tmp_path, classes={"x": 2, "y": 2, "z": 2})
    meta = BundleMeta("tiny_cnn", ["x", "y", "z"], tiny_in_process.preprocessing.to_dict())
    model_file = save_bundle(tmp_path / "m.tlmodel", create_model("tiny_cnn", 3), meta)
    one_image = next(root.rglob("*.jpg"))

    assert main(["predict", "--model", str(model_file), str(one_image), "--top-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(one_image) and len(lines) == 3
    probs = load_bundle(model_file).predict_paths([one_image]).probs[0]
    first, second = probs.argsort()[::-1][:2]
    assert probs[first] > probs[second]  # no tie, so the order below is the only right one
    assert [line.split() for line in lines[1:]] == [[f"{probs[i]:.2%}", "xyz"[i]] for i in (first, second)]


def test_ctrl_c_stops_cleanly_with_exit_130(launcher, tmp_path, make_image_folder):
    root = make_image_folder(tmp_path, classes={"a": 8, "b": 8}, size=40)
    result = run_cli(launcher, *train_args(root, tmp_path / "runs", epochs=3),
                     env={"TL_TEST_SIGNAL_AT": "BatchEnded:1:1:SIGINT"})
    assert result.returncode == 130, result.stderr
    assert "Training stopped" in result.stdout and "Traceback" not in result.stderr
    events = next((tmp_path / "runs").glob("*/events.jsonl")).read_text(encoding="utf-8").splitlines()
    assert '"status": "stopped"' in events[-1]


def test_missing_data_folder_is_bad_input(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "nowhere" in err and "Traceback" not in err


def test_unknown_backbone_is_bad_input(tmp_path, capsys, make_image_folder):
    root = make_image_folder(tmp_path)
    assert main(["train", "--data", str(root), "--backbone", "alexnet9000", "--out", str(tmp_path / "runs")]) == 2
    assert "alexnet9000" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_predict_with_a_foreign_model_file_is_bad_input(tmp_path, capsys, make_image_folder):
    root = make_image_folder(tmp_path)
    fake = tmp_path / "model.tlmodel"
    fake.write_bytes(b"hello")
    assert main(["predict", "--model", str(fake), str(root)]) == 2
    assert "not a tl_desktop model file" in capsys.readouterr().err


def test_flags_and_config_file_map_onto_the_run_config(tmp_path):
    parser = build_parser()
    config = build_config(parser.parse_args([
        "train", "--data", "imgs", "--trainable-blocks", "all", "--epochs", "7", "--head-epochs", "2",
        "--lr", "0.01", "--finetune-lr", "0.001", "--augmentation", "strong", "--seed", "5",
        "--val-fraction", "0.2", "--test-fraction", "0.1", "--device", "cpu", "--out", "elsewhere",
    ]))
    assert config.data.root == str(Path("imgs").resolve()) and config.model.trainable_blocks == "all"
    assert (config.train.epochs, config.train.head_epochs, config.train.lr, config.train.finetune_lr) == (7, 2, 0.01, 0.001)
    assert config.train.augmentation == "strong" and config.train.seed == config.data.seed == 5
    assert (config.data.val_fraction, config.data.test_fraction, config.out_dir) == (0.2, 0.1, "elsewhere")

    saved = tmp_path / "config.json"
    config.save(saved)
    again = build_config(parser.parse_args(["train", "--config", str(saved), "--epochs", "9"]))
    assert again.train.epochs == 9 and again.model.trainable_blocks == "all" and again.data.root == str(Path("imgs").resolve())

    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--trainable-blocks", "-1"])

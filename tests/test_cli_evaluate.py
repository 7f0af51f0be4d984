"""``tl-desktop evaluate``, ``predict``, ``report`` and ``train --weights-file`` through ``cli.main``:
options, outputs and exit codes. One tiny run is trained per module and copied where a test changes it."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from tl_desktop.cli import main
from tl_desktop.engine.models.bundle import load_bundle, update_bundle_meta

ENGINE_CONFTEST = Path(__file__).parent / "engine" / "conftest.py"
CLASSES = ("a", "b")
# Images per split and class (split layout); val/a also holds one picture of a "b": a confident
# mistake keeps the best temperature away from the bounds of the fit.
COUNTS = {"train": 8, "val": 3, "test": 2}


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tiny_module():
    return _load(ENGINE_CONFTEST, "tiny_backbone_conftest")


write_class_image = _load(Path(__file__).parent / "conftest.py", "shared_image_conftest").write_class_image


def _write_weights(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    save_file({k: v.contiguous() for k, v in _tiny_module().build_tiny_cnn().source.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="module")
def tiny_registered(tmp_path_factory):
    """The tiny test backbone, registered for the whole module, with its own cache folder."""
    from tl_desktop.engine.models.backbones import (
        register_backbone,
        unregister_backbone,
    )

    tiny = _tiny_module()
    weights = _write_weights(tmp_path_factory.mktemp("tiny_weights") / "tiny.safetensors", 1234)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TL_DESKTOP_CACHE_DIR", str(tmp_path_factory.mktemp("module_cache")))
        register_backbone(tiny.TINY_SPEC, tiny.build_tiny_cnn, bundled=lambda: weights)
        yield tiny.TINY_SPEC
        unregister_backbone(tiny.TINY_SPEC.name)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "images"
    index = 0
    for split, count in COUNTS.items():
        for label, name in enumerate(CLASSES):
            for _ in range(count):
                write_class_image(root / split / name / f"{name}_{index:03d}.jpg", label, index, size=40)
                index += 1
    write_class_image(root / "val" / "a" / "looks_like_b.jpg", 1, 999, size=40)
    return root


@pytest.fixture(scope="module")
def trained_run(tiny_registered, images, tmp_path_factory) -> Path:
    """A finished run folder; tests that change it work on a copy (see ``run_copy``)."""
    out = tmp_path_factory.mktemp("runs")
    code = main(["train", "--data", str(images), "--backbone", "tiny_cnn", "--trainable-blocks", "1",
                 "--epochs", "3", "--head-epochs", "1", "--batch-size", "4", "--lr", "0.05", "--out", str(out)])
    assert code == 0
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir


@pytest.fixture
def run_copy(trained_run, tmp_path) -> Path:
    return Path(shutil.copytree(trained_run, tmp_path / trained_run.name))


def model_file(run_dir: Path) -> Path:
    (path,) = run_dir.glob("*.tlmodel")
    return path


def evaluation_of(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text(encoding="utf-8"))


def csv_rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def images_of(root: Path, split: str) -> set[str]:
    return {str(p) for p in (root / split).rglob("*.jpg")}


# ----- evaluate ----------------------------------------------------------------------------------

def test_evaluate_test_split_into_a_chosen_folder(trained_run, images, tmp_path, capsys):
    out = tmp_path / "eval-test"
    assert main(["evaluate", "--model", str(trained_run), "--split", "test", "--out", str(out),
                 "--bootstrap", "50"]) == 0
    printed = capsys.readouterr().out
    assert "test split" in printed and f"{2 * COUNTS['test']} images, 2 classes" in printed
    assert f"to {out}" in printed
    assert sorted(p.name for p in out.iterdir()) == ["confusion_matrix.csv", "metrics.json", "per_class.csv",
                                                    "predictions.csv"]
    saved = evaluation_of(out)
    assert saved["source"]["kind"] == "split" and saved["source"]["split"] == "test"
    assert saved["metrics"]["num_samples"] == 2 * COUNTS["test"] and saved["metrics"]["n_bootstrap"] == 50
    rows = csv_rows(out / "predictions.csv")
    assert {str(Path(r[0])) for r in rows[1:]} == images_of(images, "test")
    confusion = csv_rows(out / "confusion_matrix.csv")
    assert sum(int(v) for row in confusion[1:] for v in row[1:]) == 2 * COUNTS["test"]


def test_evaluate_defaults_to_the_validation_split_inside_the_run(run_copy, images, capsys):
    assert main(["evaluate", "--model", str(run_copy), "--bootstrap", "0"]) == 0
    printed = capsys.readouterr().out
    (written,) = [p.parent for p in run_copy.rglob("metrics.json")]
    assert written.is_relative_to(run_copy) and f"to {written}" in printed
    saved = evaluation_of(written)
    assert saved["source"]["split"] == "val" and saved["metrics"]["num_samples"] == len(images_of(images, "val"))
    assert saved["metrics"]["intervals"] == {}


def test_positive_class_and_threshold_decide_every_metric(trained_run, tmp_path, capsys):
    out = tmp_path / "everything-positive"
    assert main(["evaluate", "--model", str(trained_run), "--split", "test", "--positive-class", "a",
                 "--threshold", "0", "--bootstrap", "0", "--out", str(out)]) == 0
    assert "Positive class: a, decision threshold 0.00" in capsys.readouterr().out
    binary = evaluation_of(out)["metrics"]["binary"]
    n = COUNTS["test"]
    assert (binary["positive_class"], binary["threshold"]) == ("a", 0.0)
    assert (binary["tp"], binary["fn"], binary["fp"], binary["tn"]) == (n, 0, n, 0)  # p >= 0: all positive
    assert (binary["sensitivity"], binary["specificity"]) == (1.0, 0.0)
    assert evaluation_of(out)["metrics"]["confusion_matrix"] == [[n, 0], [n, 0]]

    out = tmp_path / "threshold-only"
    assert main(["evaluate", "--model", str(trained_run), "--split", "test", "--threshold", "1",
                 "--bootstrap", "0", "--out", str(out)]) == 0
    binary = evaluation_of(out)["metrics"]["binary"]
    assert binary["positive_class"] == "b"  # without a name, the second class is the positive one
    probs = np.array([[float(v) for v in row[4:]] for row in csv_rows(out / "predictions.csv")[1:]])
    assert binary["tp"] + binary["fp"] == int((probs[:, 1] >= 1.0).sum())


@pytest.mark.parametrize("options, message", [
    (["--positive-class", "c"], "not one of the model's classes: a, b"),
    (["--threshold", "1.5"], "between 0 and 1"),
    (["--bootstrap", "-1"], "--bootstrap"),
])
def test_bad_evaluation_options_are_bad_input(trained_run, tmp_path, capsys, options, message):
    out = tmp_path / "never"
    assert main(["evaluate", "--model", str(trained_run), "--out", str(out), *options]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and "Traceback" not in err
    assert not out.exists()


def test_a_model_file_outside_its_run_folder(trained_run, images, tmp_path, capsys, monkeypatch):
    alone = tmp_path / "elsewhere" / "alone.tlmodel"
    alone.parent.mkdir()
    shutil.copy(model_file(trained_run), alone)
    monkeypatch.chdir(tmp_path)

    assert main(["evaluate", "--model", str(alone), "--bootstrap", "0"]) == 2
    assert "not in a run folder" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(alone), "--calibrate", "--data", str(images / "test")]) == 2
    assert "--calibrate needs a run folder" in capsys.readouterr().err

    assert main(["evaluate", "--model", str(alone), "--data", str(images / "test"), "--bootstrap", "0"]) == 0
    assert "external folder" in capsys.readouterr().out
    (written,) = [p.parent for p in (tmp_path / "evaluation").rglob("metrics.json")]  # under ./evaluation
    saved = evaluation_of(written)
    assert saved["source"]["kind"] == "external" and saved["source"]["model"] == str(alone.resolve())
    assert saved["metrics"]["num_samples"] == len(images_of(images, "test"))
    assert not list((tmp_path / "elsewhere").rglob("metrics.json"))


def test_evaluation_that_cannot_be_written_exits_1(trained_run, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["evaluate", "--model", str(trained_run), "--split", "test", "--bootstrap", "0",
                 "--out", str(blocker / "eval")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "a-file" in err and "Traceback" not in err


def test_a_missing_model_is_bad_input(tmp_path, capsys):
    assert main(["evaluate", "--model", str(tmp_path / "nothing.tlmodel")]) == 2
    assert "does not exist" in capsys.readouterr().err


# ----- calibration -------------------------------------------------------------------------------

def _printed_temperature(text: str) -> float:
    match = re.search(r"T = ([0-9.]+)", text)
    assert match, text
    return float(match.group(1))


def _calibrate(run_dir: Path, capsys) -> float:
    assert main(["evaluate", "--model", str(run_dir), "--calibrate", "--bootstrap", "0"]) == 0
    printed = _printed_temperature(capsys.readouterr().out)
    stored = load_bundle(model_file(run_dir)).meta.temperature
    assert stored == pytest.approx(printed, abs=5e-4)  # the printed value is the one stored
    return stored


def test_calibrate_stores_a_temperature_that_lowers_the_validation_loss(run_copy, capsys):
    assert main(["evaluate", "--model", str(run_copy), "--calibrate", "--bootstrap", "0"]) == 0
    printed = capsys.readouterr().out
    before, after = map(float, re.search(r"validation NLL ([0-9.]+) -> ([0-9.]+)", printed).groups())
    assert after <= before
    temperature = _printed_temperature(printed)
    assert 0.05 < temperature < 20 and temperature != pytest.approx(1.0, abs=1e-3)
    assert load_bundle(model_file(run_copy)).meta.temperature == pytest.approx(temperature, abs=5e-4)
    # The evaluation after calibrating already uses it: its log loss is the improved one.
    (written,) = [p.parent for p in run_copy.rglob("metrics.json")]
    assert evaluation_of(written)["metrics"]["log_loss"] == pytest.approx(after, abs=1e-3)


def test_a_new_temperature_multiplies_the_stored_one(run_copy, capsys):
    """Temperatures scale the original logits: calibrating again changes nothing, and a stored
    temperature is not replaced by the factor fitted on top of it."""
    first = _calibrate(run_copy, capsys)
    assert _calibrate(run_copy, capsys) == pytest.approx(first, rel=1e-3)
    update_bundle_meta(model_file(run_copy), temperature=first * 3)
    assert _calibrate(run_copy, capsys) == pytest.approx(first, rel=1e-3)


# ----- predict -----------------------------------------------------------------------------------

def test_predict_rejects_top_k_below_one(trained_run, images, capsys):
    assert main(["predict", "--model", str(trained_run), str(images / "test"), "--top-k", "0"]) == 2
    captured = capsys.readouterr()
    assert "--top-k must be at least 1" in captured.err and captured.out == ""


def test_predict_a_folder_without_images_is_bad_input(trained_run, tmp_path, capsys):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("no pictures here")
    assert main(["predict", "--model", str(trained_run), str(folder)]) == 2
    assert "no supported images" in capsys.readouterr().err


def test_predict_with_only_unreadable_images_exits_1(trained_run, tmp_path, capsys):
    folder = tmp_path / "broken"
    folder.mkdir()
    for name in ("one.jpg", "two.png"):
        (folder / name).write_bytes(b"not an image at all")
    table = tmp_path / "out.csv"
    assert main(["predict", "--model", str(trained_run), str(folder), "--csv", str(table)]) == 1
    err = capsys.readouterr().err
    assert err.count("skipped") == 2 and "one.jpg" in err and "two.png" in err
    rows = csv_rows(table)
    assert len(rows) == 3 and all(row[1] == "" and row[-1] for row in rows[1:])  # each with its reason

    assert main(["predict", "--model", str(trained_run), str(folder / "one.jpg")]) == 1
    assert "skipped" in capsys.readouterr().err


def test_predict_csv_that_cannot_be_written_exits_1(trained_run, images, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["predict", "--model", str(trained_run), str(images / "test"), "--csv",
                 str(blocker / "predictions.csv")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "predictions.csv" in err and "Traceback" not in err


# ----- report ------------------------------------------------------------------------------------

def test_report_uses_the_card_file(run_copy, tmp_path, capsys):
    card = tmp_path / "card.md"
    card.write_text("Intended use: sorting pictures of the tiny test classes only (Zebra-7 protocol).",
                    encoding="utf-8")
    out = tmp_path / "report"
    assert main(["report", str(run_copy), "--card", str(card), "--out", str(out), "--bootstrap", "0"]) == 0
    printed = capsys.readouterr().out
    html_file, pdf_file = out / "report.html", out / "report.pdf"
    assert f"Wrote {html_file} and {pdf_file}" in printed
    assert "Zebra-7 protocol" in html_file.read_text(encoding="utf-8")
    assert pdf_file.read_bytes().startswith(b"%PDF")


def test_report_with_a_missing_card_or_no_run_is_bad_input(run_copy, tmp_path, capsys):
    assert main(["report", str(run_copy), "--card", str(tmp_path / "no-card.md"), "--out", str(tmp_path / "r")]) == 2
    assert "cannot read the card file" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    assert main(["report", str(tmp_path / "no-run")]) == 2
    assert "is not a folder" in capsys.readouterr().err


# ----- train --weights-file ----------------------------------------------------------------------

def test_train_starts_from_the_given_weights_file(tiny_registered, images, tmp_path, capsys):
    weights = _write_weights(tmp_path / "other.safetensors", seed=99)  # unlike the bundled tiny weights
    out = tmp_path / "runs"
    assert main(["train", "--data", str(images), "--backbone", "tiny_cnn", "--weights-file", str(weights),
                 "--trainable-blocks", "0", "--epochs", "1", "--head-epochs", "1", "--batch-size", "4",
                 "--out", str(out)]) == 0
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    state = load_bundle(model_file(run_dir)).model.state_dict()
    given = load_file(str(weights))
    for block in range(3):  # head-only training: the backbone is exactly the file's
        for name in ("0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var"):
            assert torch.equal(state[f"blocks.{block}.{name}"], given[f"{block}.{name}"]), (block, name)
    assert json.loads(json.dumps(load_bundle(model_file(run_dir)).meta.config))["model"]["weights_file"] == \
        str(weights)


def test_train_with_a_broken_weights_file_is_bad_input(tiny_registered, images, tmp_path, capsys):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"these are not weights")
    out = tmp_path / "runs"
    assert main(["train", "--data", str(images), "--backbone", "tiny_cnn", "--weights-file", str(broken),
                 "--epochs", "2", "--head-epochs", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "broken.safetensors" in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def test_epochs_below_the_default_head_epochs_shorten_the_head_phase():
    from tl_desktop.cli import build_parser
    from tl_desktop.commands.train import build_config

    config = build_config(build_parser().parse_args(["train", "--data", "imgs", "--epochs", "1"]))
    assert config.train.epochs == 1 and config.train.head_epochs <= 1

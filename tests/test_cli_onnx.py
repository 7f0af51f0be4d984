"""ONNX deployment end to end: ``export --format onnx`` with its parity check, ``predict`` with the ONNX
file, the standalone example without torch, and files the app must refuse."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tl_desktop.cli import main

EXAMPLE = Path(__file__).parent.parent / "examples" / "predict_onnx.py"


def _probabilities(csv_path: Path) -> dict[str, list[float]]:
    with csv_path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    width = header.index("error") if "error" in header else len(header)
    return {Path(r[0]).name: [float(v) for v in r[3:width]] for r in rows[1:] if r[1]}


@pytest.fixture(scope="module")
def onnx_run(tmp_path_factory: pytest.TempPathFactory, make_image_folder, tiny_runs) -> Path:
    """A completed tiny-CNN run on three synthetic classes (the backbone stays registered meanwhile)."""
    from tl_desktop.engine.models.backbones import unregister_backbone

    base = tmp_path_factory.mktemp("onnx_run")
    tiny_runs.register_tiny_backbone(base)
    yield tiny_runs.train_tiny_run(make_image_folder(base, classes={"a": 8, "b": 8, "c": 8}, size=44), base / "runs")
    unregister_backbone(tiny_runs.TINY_NAME)


def test_export_checks_parity_writes_its_figures_and_predicts_like_the_model(onnx_run, tmp_path, capsys):
    out = tmp_path / "classifier.onnx"
    assert main(["export", str(onnx_run), "--format", "onnx", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "parity check passed" in said and str(out) in said
    parity = json.loads((tmp_path / "classifier.parity.json").read_text())
    assert parity["passed"] and parity["images"] == parity["same_top1"] > 0
    assert parity["max_probability_difference"] <= 1e-4

    import onnx

    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(props["classes"]) == ["a", "b", "c"]
    assert {"resize_size", "input_size", "mean", "std", "interpolation", "colour_mode"} <= set(
        json.loads(props["preprocessing"]))
    assert {"temperature", "backbone", "tl_desktop_version", "created"} <= set(props)

    images = Path(json.loads((onnx_run / "config.json").read_text())["data"]["root"])
    from_onnx, from_model = tmp_path / "onnx.csv", tmp_path / "model.csv"
    assert main(["predict", "--model", str(out), str(images), "--csv", str(from_onnx)]) == 0
    assert main(["predict", "--model", str(onnx_run), str(images), "--csv", str(from_model)]) == 0
    a, b = _probabilities(from_onnx), _probabilities(from_model)
    assert a.keys() == b.keys() and len(a) == 24
    assert max(abs(x - y) for name in a for x, y in zip(a[name], b[name])) <= 1e-4

    # never replaced without --force; with it, written again
    assert main(["export", str(onnx_run), "--format", "onnx", "--out", str(out)]) == 2
    assert "add --force" in capsys.readouterr().err
    assert main(["export", str(onnx_run), "--format", "onnx", "--out", str(out), "--force"]) == 0


def test_the_standalone_example_needs_no_torch_and_gives_the_apps_answers(onnx_run, tmp_path):
    out = tmp_path / "m.onnx"
    assert main(["export", str(onnx_run), "--format", "onnx", "--out", str(out)]) == 0
    images = Path(json.loads((onnx_run / "config.json").read_text())["data"]["root"])
    from_app, from_example = tmp_path / "app.csv", tmp_path / "example.csv"
    assert main(["predict", "--model", str(out), str(images), "--csv", str(from_app)]) == 0
    script = ("import runpy, sys\n"
              f"sys.argv = ['predict_onnx.py', {str(out)!r}, {str(images)!r}, '--csv', {str(from_example)!r}]\n"
              "try:\n"
              f"    runpy.run_path({str(EXAMPLE)!r}, run_name='__main__')\n"
              "except SystemExit as exc:\n"
              "    assert exc.code == 0, exc.code\n"
              "assert 'torch' not in sys.modules and 'tl_desktop' not in sys.modules, 'imported torch'\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": ""}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    app, example = _probabilities(from_app), _probabilities(from_example)
    assert app.keys() == example.keys() and len(app) == 24
    # Pillow's resize is not torch's, so pixels differ slightly; the answers must not.
    assert all(np.argmax(app[name]) == np.argmax(example[name]) for name in app)
    assert max(abs(x - y) for name in app for x, y in zip(app[name], example[name])) < 0.05


def test_parity_on_a_chosen_folder_and_bad_export_requests(onnx_run, tmp_path, capsys, make_image_folder):
    folder = make_image_folder(tmp_path / "other", classes={"a": 3, "b": 3}, size=50)
    out = tmp_path / "m.onnx"
    assert main(["export", str(onnx_run), "--format", "onnx", "--out", str(out), "--images", str(folder)]) == 0
    assert json.loads((tmp_path / "m.parity.json").read_text())["images"] == 6
    assert main(["export", str(onnx_run), "--format", "onnx", "--out", str(tmp_path / "m.txt")]) == 2
    assert "must end in .onnx" in capsys.readouterr().err
    assert main(["export", str(onnx_run), "--out", str(tmp_path / "x.tlmodel"), "--images", str(folder)]) == 2
    assert "--images goes with --format onnx" in capsys.readouterr().err


def _predict_error(model: Path, image: Path, capsys) -> str:
    assert main(["predict", "--model", str(model), str(image)]) == 2
    return capsys.readouterr().err


def test_foreign_damaged_and_escaping_onnx_files_are_refused(onnx_run, tmp_path, capsys, make_image_folder):
    import onnx
    from onnx import TensorProto, helper

    image = next(make_image_folder(tmp_path / "img", classes={"a": 1}, size=40).rglob("*.jpg"))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(os.urandom(3000))
    assert "not an ONNX file or it is damaged" in _predict_error(garbage, image, capsys)

    foreign = tmp_path / "foreign.onnx"
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["probabilities"])], "g",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, 3])])
    onnx.save(helper.make_model(graph), str(foreign))
    assert "not a tl_desktop export" in _predict_error(foreign, image, capsys)

    good = tmp_path / "good.onnx"
    assert main(["export", str(onnx_run), "--format", "onnx", "--out", str(good)]) == 0
    capsys.readouterr()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert "damaged" in _predict_error(truncated, image, capsys)

    model = onnx.load(str(good))
    tensor = max(model.graph.initializer, key=lambda t: len(t.raw_data) + 4 * len(t.float_data))
    tensor.data_location = TensorProto.EXTERNAL
    del tensor.external_data[:]
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    escaping = tmp_path / "escaping.onnx"
    escaping.write_bytes(model.SerializeToString())
    assert "refers to data outside its folder" in _predict_error(escaping, image, capsys)
    assert "does not exist" in _predict_error(tmp_path / "missing.onnx", image, capsys)


def test_a_bad_inference_setting_is_named(onnx_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TL_DESKTOP_INFERENCE", "fastest")
    image = next(Path(json.loads((onnx_run / "config.json").read_text())["data"]["root"]).rglob("*.jpg"))
    assert main(["predict", "--model", str(onnx_run), str(image)]) == 2
    assert "TL_DESKTOP_INFERENCE must be one of torch, onnxruntime" in capsys.readouterr().err

"""Results are never overwritten or faked (issue 14, item 6): external evaluations of folders with the
same name get their own folders, an evaluation that could read no image writes nothing and exits 2,
and a report whose images are gone refuses or says which section lost which images."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tl_desktop.cli import main
from tl_desktop.engine.training.runfolder import RunFolder

TESTS = Path(__file__).parent


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


write_class_image = _load(TESTS / "conftest.py", "faults_image_conftest").write_class_image


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tl_desktop.engine.models.backbones import (
        register_backbone,
        unregister_backbone,
    )

    module = _load(TESTS / "engine" / "conftest.py", "faults_tiny_conftest")
    weights = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    torch.manual_seed(1234)
    save_file({k: v.contiguous() for k, v in module.build_tiny_cnn().source.state_dict().items()}, str(weights))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TL_DESKTOP_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        register_backbone(module.TINY_SPEC, module.build_tiny_cnn, bundled=lambda: weights)
        yield module.TINY_SPEC
        unregister_backbone(module.TINY_SPEC.name)


def image_folder(root: Path, per_class: dict[str, int], seed: int = 0) -> Path:
    for label, (name, count) in enumerate(per_class.items()):
        for index in range(count):
            write_class_image(root / name / f"{name}_{index:03d}.jpg", label, seed + index, size=40)
    return root


@pytest.fixture
def run_and_data(tiny, tmp_path) -> tuple[Path, Path]:
    """A finished run trained on ``tmp_path/data/images`` (split layout, so its test part is known)."""
    data = tmp_path / "data" / "images"
    for split, count in (("train", 6), ("val", 3), ("test", 3)):
        image_folder(data / split, {"a": count, "b": count}, seed=len(split) * 100)
    assert main(["train", "--data", str(data), "--backbone", "tiny_cnn", "--trainable-blocks", "1", "--epochs",
                 "2", "--head-epochs", "1", "--batch-size", "4", "--out", str(tmp_path / "runs")]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    return run, data


def test_two_external_folders_of_the_same_name_keep_their_own_results(tiny, run_and_data, tmp_path, capsys):
    run, _ = run_and_data
    first = image_folder(tmp_path / "site_a" / "images", {"a": 2, "b": 2})
    second = image_folder(tmp_path / "site_b" / "images", {"a": 3, "b": 1}, seed=50)
    for folder in (first, second):
        assert main(["evaluate", "--model", str(run), "--data", str(folder), "--bootstrap", "0"]) == 0
    folders = [RunFolder(run).external_evaluation_dir(f) for f in (first, second)]
    assert folders[0] != folders[1] and all(f.name.startswith("external-images-") for f in folders)
    assert [p.name for p in RunFolder(run).external_evaluations()] == sorted(f.name for f in folders)
    sizes = [json.loads((f / "metrics.json").read_text())["metrics"]["num_samples"] for f in folders]
    assert sizes == [4, 4]
    assert [json.loads((f / "metrics.json").read_text())["source"]["folder"] for f in folders] == [
        str(first.resolve()), str(second.resolve())]


def test_evaluating_a_split_whose_images_moved_keeps_the_earlier_results(tiny, run_and_data, capsys):
    run, data = run_and_data
    assert main(["evaluate", "--model", str(run), "--split", "test", "--bootstrap", "0"]) == 0
    saved = RunFolder(run).split_evaluation_dir("test") / "metrics.json"
    before = saved.read_bytes()
    capsys.readouterr()
    data.rename(data.with_name("moved"))
    assert main(["evaluate", "--model", str(run), "--split", "test", "--bootstrap", "0"]) == 2
    captured = capsys.readouterr()
    assert "none of the 6 test images of run" in captured.err and "moved or deleted" in captured.err
    assert "Wrote" not in captured.out and "Traceback" not in captured.err
    assert saved.read_bytes() == before


def test_an_external_folder_of_unreadable_images_writes_nothing(tiny, run_and_data, tmp_path, capsys):
    run, _ = run_and_data
    broken = tmp_path / "broken"
    for name in ("a", "b"):
        (broken / name).mkdir(parents=True)
        (broken / name / "x.jpg").write_bytes(b"not an image")
    assert main(["evaluate", "--model", str(run), "--data", str(broken), "--bootstrap", "0"]) == 2
    assert "error:" in capsys.readouterr().err
    assert not RunFolder(run).external_evaluation_dir(broken).exists()


def test_a_report_whose_images_are_all_gone_is_refused(tiny, run_and_data, tmp_path, capsys):
    run, data = run_and_data
    shutil.rmtree(data)
    assert main(["report", str(run), "--bootstrap", "0", "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert "could be evaluated, so its report would hold no results" in err and "Traceback" not in err
    assert not (tmp_path / "rep" / "report.pdf").exists()


def test_a_report_names_a_split_that_lost_some_images(tiny, run_and_data, tmp_path):
    from tl_desktop.report.content import gather_report

    run, data = run_and_data
    for path in sorted((data / "test").rglob("*.jpg"))[:2]:
        path.unlink()
    shutil.rmtree(data / "val")
    notes = gather_report(run, n_bootstrap=0).notes
    assert any(n.startswith("Validation split left out of this report: none of the 6") for n in notes)
    assert "Test split: 2 of 6 images could not be read (moved or deleted?); its results cover the other 4 only" in notes

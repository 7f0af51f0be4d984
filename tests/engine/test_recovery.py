"""A run killed before it exported its model file is still usable: every command builds the model
file from the best checkpoint and says so; ``export`` writes it explicitly and never overwrites."""

from __future__ import annotations

from pathlib import Path

import pytest

from tl_desktop.cli import main
from tl_desktop.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from tl_desktop.engine.models.bundle import BundleError, load_bundle
from tl_desktop.engine.training.runfolder import RunFolder, model_file_of
from tl_desktop.engine.training.trainer import Trainer


@pytest.fixture
def killed_run(tiny_backbone, make_image_folder, tmp_path: Path) -> tuple[RunFolder, Path, list]:
    """A trained run as a hard kill leaves it: best checkpoint and events, no model file."""
    root = make_image_folder(tmp_path, classes={"a": 6, "b": 6}, size=40)
    config = RunConfig(data=DataConfig(root=str(root)), out_dir=str(tmp_path / "runs"),
                       model=ModelConfig(backbone="tiny_cnn", trainable_blocks=1),
                       train=TrainConfig(epochs=2, head_epochs=1, batch_size=4))
    result = Trainer(config).fit()
    run = RunFolder(result.run_dir)
    reference = load_bundle(run.model_file).predict_paths([s.path for s in run.scan().split.val]).probs
    run.model_file.unlink()
    return run, root, reference


def test_the_model_file_is_rebuilt_from_the_best_checkpoint(killed_run) -> None:
    run, _root, reference = killed_run
    notes: list[str] = []
    path = model_file_of(run.path, note=notes.append)
    assert path == run.model_file and path.is_file()
    assert notes and "built from the run's best checkpoint" in notes[0]
    loaded = load_bundle(path)
    assert loaded.classes == ["a", "b"]
    assert loaded.meta.metrics["best_epoch"] == next(e.epoch for e in reversed(run.epoch_history()) if e.is_best)
    probs = loaded.predict_paths([s.path for s in run.scan().split.val]).probs
    assert abs(probs - reference).max() < 1e-5  # the same model as the one the run exported


def test_a_run_without_checkpoint_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(BundleError, match="has no model.tlmodel"):
        model_file_of(tmp_path)


def test_predict_and_evaluate_accept_a_killed_run_and_say_so(killed_run, capsys) -> None:
    run, root, _ = killed_run
    assert main(["evaluate", "--model", str(run.path), "--bootstrap", "0"]) == 0
    assert "built from the run's best checkpoint" in capsys.readouterr().err
    run.model_file.unlink()
    image = next(root.rglob("*.jpg"))
    assert main(["predict", "--model", str(run.path), str(image)]) == 0
    captured = capsys.readouterr()
    assert "built from the run's best checkpoint" in captured.err and str(image) in captured.out


def test_export_writes_the_model_file_and_never_overwrites_without_force(killed_run, tmp_path, capsys) -> None:
    run, _root, _ = killed_run
    target = tmp_path / "for-the-lab.tlmodel"
    assert main(["export", str(run.path), "--out", str(target)]) == 0
    assert target.read_bytes() == run.model_file.read_bytes()
    target.write_bytes(b"the user's own file")
    assert main(["export", str(run.path), "--out", str(target)]) == 2
    assert f"{target} exists" in capsys.readouterr().err
    assert target.read_bytes() == b"the user's own file"
    assert main(["export", str(run.path), "--out", str(target), "--force"]) == 0
    assert target.read_bytes() == run.model_file.read_bytes()
    assert main(["export", str(tmp_path / "nowhere")]) == 2
    assert "is not a run folder" in capsys.readouterr().err


def test_files_the_user_owns_are_never_replaced_without_force(killed_run, tmp_path, capsys) -> None:
    run, root, _ = killed_run
    table = tmp_path / "my-edited-table.csv"
    table.write_text("my notes\n", encoding="utf-8")
    assert main(["predict", "--model", str(run.path), str(root), "--csv", str(table)]) == 2
    assert f"{table} exists; choose another name or add --force" in capsys.readouterr().err
    assert table.read_text(encoding="utf-8") == "my notes\n"
    out = tmp_path / "mine"
    (out).mkdir()
    (out / "metrics.json").write_text("{}", encoding="utf-8")
    assert main(["evaluate", "--model", str(run.path), "--out", str(out), "--bootstrap", "0"]) == 2
    assert f"{out / 'metrics.json'} exists" in capsys.readouterr().err
    (out / "report.pdf").write_bytes(b"%PDF my own")
    assert main(["report", str(run.path), "--out", str(out)]) == 2
    assert f"{out / 'report.pdf'} exists" in capsys.readouterr().err
    assert (out / "metrics.json").read_text(encoding="utf-8") == "{}"
    assert (out / "report.pdf").read_bytes() == b"%PDF my own"
    assert main(["predict", "--model", str(run.path), str(root), "--csv", str(table), "--force"]) == 0
    assert table.read_text(encoding="utf-8").startswith("path,label,probability")

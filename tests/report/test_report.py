"""The report of a real tiny run: every section in the HTML, offline-safe, and the expected PDF pages."""

from __future__ import annotations

import re
from pathlib import Path

from tl_desktop.cli import main
from tl_desktop.engine.training.runfolder import RunFolder
from tl_desktop.report.build import build_report

SECTION_IDS = ["summary", "dataset", "model", "training", "eval-val", "eval-test", "mistakes", "external", "card"]


def _pdf_page_count(path: Path) -> int:
    return len(re.findall(rb"/Type\s*/Page(?!s)", path.read_bytes()))


def test_evaluate_command_writes_files_and_report_includes_external(tiny_run, external_folder, tmp_path, capsys):
    assert main(["evaluate", "--model", str(tiny_run), "--bootstrap", "100"]) == 0
    out = capsys.readouterr().out
    assert "Accuracy" in out and "95% CI" in out
    for name in ("metrics.json", "per_class.csv", "confusion_matrix.csv", "predictions.csv"):
        assert (tiny_run / "evaluation" / "val" / name).is_file()
    assert main(["evaluate", "--model", str(tiny_run / "model.tlmodel"), "--data", str(external_folder),
                 "--bootstrap", "50"]) == 0
    out = capsys.readouterr().out
    assert "No images of: rust" in out
    external = RunFolder(tiny_run).external_evaluation_dir(external_folder)
    assert (external / "predictions.csv").is_file()

    card = "Intended use\nScreening photos of potato leaves in our greenhouse only.\n"
    files = build_report(tiny_run, tmp_path / "rep", model_card=card, n_bootstrap=100)
    page = files.html.read_text(encoding="utf-8")
    for key in SECTION_IDS + [f"eval-{RunFolder(tiny_run).external_evaluation_dir(external_folder).name}"]:
        assert f'<section id="{key}">' in page, key
    assert not re.search(r"https?://", page)
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", page)
    assert "<script" not in page.lower()
    assert "Screening photos of potato leaves" in page
    assert (tiny_run / "model_card.md").read_text(encoding="utf-8") == card
    images = re.findall(r'src="data:image/(png|jpeg);base64,', page)
    assert len(images) >= 12  # curves, 2 confusion matrices, ROC and calibration per set, gallery tiles

    titles = [t for t, _, _ in files.sections]
    assert titles[:4] == ["Summary", "Dataset", "Model and settings", "Training"]
    assert titles[-3:] == ["Most confident mistakes", "External validation", "Intended use and limitations"]
    assert sum(t.startswith("Results: ") for t in titles) == 3
    assert files.sections[0][1] == 2  # page 1 is the contents page
    for (_, _, last), (_, first, _) in zip(files.sections, files.sections[1:]):
        assert first == last + 1
    for title, first, last in files.sections:
        if title.startswith("Results: "):
            assert last - first + 1 >= 2, title  # matrices, then the per-class table, ROC and calibration
    assert files.sections[-1][2] == files.pdf_pages == _pdf_page_count(files.pdf)


def test_report_command_without_card_uses_saved_or_draft(tiny_run, tmp_path, capsys):
    (tiny_run / "model_card.md").unlink(missing_ok=True)
    assert main(["report", str(tiny_run), "--out", str(tmp_path / "r"), "--bootstrap", "50"]) == 0
    out = capsys.readouterr().out
    assert "report.pdf" in out and "Summary: page 2" in out
    page = (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
    assert "to be completed by the person responsible" in page
    assert "blight, healthy, rust" in page


def test_report_command_rejects_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_evaluate_command_explains_class_names_that_differ(tiny_run, make_image_folder, tmp_path, capsys):
    folder = make_image_folder(tmp_path / "other", classes={"Blight": 2, "healthy": 2}, size=40)
    assert main(["evaluate", "--model", str(tiny_run), "--data", str(folder), "--bootstrap", "0"]) == 2
    err = capsys.readouterr().err
    assert "'Blight'" in err and "named exactly like one of the model's classes (blight, healthy, rust)" in err

"""The Data page with a label table: columns offered for grouping, a grouped split, and a bad table's dialog."""

from __future__ import annotations

from pathlib import Path


def _table(tmp_path: Path, make_image_folder, extra: str = "") -> Path:
    root = make_image_folder(tmp_path, {"healthy": 8, "sick": 8}, size=32)
    rows = ["path,label,patient"] + [f"images/{name}/{image.name},{name},P{i % 4}" for name in ("healthy", "sick")
                                      for i, image in enumerate(sorted((root / name).iterdir()))]
    table = tmp_path / "labels.csv"
    table.write_text("\n".join(rows) + "\n" + extra, encoding="utf-8")
    return table


def test_a_grouped_table_is_scanned_with_its_column_offered_for_grouping(qtbot, window, make_image_folder, tmp_path):
    table = _table(tmp_path, make_image_folder)
    page = window.data_page
    page.folder.set_path(str(table))
    page._offer_columns(str(table))
    assert [page.group_by.itemText(i) for i in range(page.group_by.count())] == ["", "patient", "dicom:PatientID"]
    page.group_by.setCurrentText("patient")
    with qtbot.waitSignal(window.session.scan_changed, timeout=30000):
        page.scan()
    assert [page.table.item(r, 0).text() for r in range(page.table.rowCount())] == ["healthy", "sick"]
    assert "Whole groups (4) go to one part each" in page.split_info.text()
    data = window.session.config.data
    assert data.labels == str(table) and data.root == "" and data.group_by == "patient"
    assert "4 groups</b> from the table column 'patient'" in page.summary.text()
    assert window.session.scan.audit.table == str(table.resolve())


def test_a_bad_table_opens_a_dialog_listing_every_bad_line(qtbot, window, make_image_folder, tmp_path, dialogs_shown):
    table = _table(tmp_path, make_image_folder, "images/sick/gone.jpg,sick,P1\nimages/sick/sick_000.jpg,,P2\n")
    window.data_page.open_folder(str(table))
    qtbot.waitUntil(lambda: bool(dialogs_shown), timeout=30000)
    what, next_step, details = dialogs_shown[0].split(" | ")
    assert "cannot be used: 2 lines need fixing" in what and "line 18: file 'images/sick/gone.jpg' not found" in what
    assert "line 1 is the header" in next_step
    assert details.splitlines()[1] == "line 19: the label is empty" and "Traceback" not in details

"""Privacy: a real tiny training, prediction, evaluation and report on DICOM files whose patient tags hold
marker strings, then every file written (run folder, CSVs, report, caches) and every line printed is searched
for the markers. Compressed containers are opened (the model zip, PDF streams) so nothing hides in them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
from dicom_writer import MARKERS, write_dicom


def _run(launcher: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, str(launcher), *args], capture_output=True, text=True, timeout=240,
                          env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    return done


def _dicom_classes(root: Path) -> None:
    rng = np.random.default_rng(5)
    for index, name in enumerate(("lesion", "normal")):
        for i in range(8):
            pixels = rng.integers(0, 800, size=(40, 40)).astype(np.uint16)
            pixels[10:30, 10:30] += 2000 * (1 - index)  # a bright square marks the lesion class
            write_dicom(root / name / f"IM{i:03d}", pixels, bits_stored=12, slope=1.0, intercept=-1024,
                        window=(40, 3000), tags=MARKERS)


def _texts(path: Path) -> list[bytes]:
    """The file's bytes plus whatever it holds compressed: zip members and PDF Flate streams."""
    data = path.read_bytes()
    found = [data]
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            found += [archive.read(name) for name in archive.namelist()]
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", data, flags=re.S):
        try:
            text = zlib.decompress(stream)
        except zlib.error:
            continue
        # matplotlib kerns every character apart, [ (Z) 0.68 (e) ... ] TJ: join the string pieces back up
        found += [text, b"".join(re.findall(rb"\(((?:\\.|[^\\)])*)\)", text))]
    return found


def test_no_patient_tag_value_is_written_or_printed(tiny_launcher, tmp_path):
    data = tmp_path / "data"
    _dicom_classes(data)
    runs = tmp_path / "runs"
    printed = [_run(tiny_launcher, "train", "--data", str(data), "--backbone", "tiny_cnn", "--trainable-blocks", "1",
                    "--epochs", "2", "--head-epochs", "1", "--batch-size", "4", "--out", str(runs))]
    run_dir = next(runs.glob("*-tiny_cnn"))
    printed.append(_run(tiny_launcher, "predict", "--model", str(run_dir), str(data), "--csv", str(tmp_path / "p.csv")))
    printed.append(_run(tiny_launcher, "evaluate", "--model", str(run_dir), "--split", "val", "--bootstrap", "50"))
    printed.append(_run(tiny_launcher, "report", str(run_dir), "--bootstrap", "50"))
    written = [p for p in tmp_path.rglob("*") if p.is_file() and data not in p.parents]
    cache = Path(os.environ["TL_DESKTOP_CACHE_DIR"])
    written += [p for p in cache.rglob("*") if p.is_file()]
    assert (tmp_path / "p.csv").is_file() and any(p.name == "report.html" for p in written)
    assert any(p.name == "audit.json" for p in written) and any(p.suffix == ".jsonl" for p in written)
    markers = [value.encode("utf-8") for value in MARKERS.values()]
    markers += [b"Quixmarker", b"PIDMARK", b"ACCMARK", b"Instmarker"]  # parts, in case a name is split or cased
    leaks = [(p.relative_to(tmp_path) if tmp_path in p.parents else p, m)
             for p in written for text in _texts(p) for m in markers if m.lower() in text.lower()]
    leaks += [("output", m) for done in printed for m in markers
              if m.decode().lower() in (done.stdout + done.stderr).lower()]
    assert leaks == []
    # the search can see: the markers are found in the source files, the class names inside the PDF's streams
    source = next((data / "lesion").iterdir())
    assert all(any(m in text for text in _texts(source)) for m in markers[:4])
    pdf = next(p for p in written if p.suffix == ".pdf")
    assert any(b"lesion" in text for text in _texts(pdf)[1:])
    assert "DICOM: 16 files" in printed[0].stdout  # the files really were read as DICOM

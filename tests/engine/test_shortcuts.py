"""The shortcut audit: a file property that gives a class away is found, named and warned about; honest data is not."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from PIL import Image

from tl_desktop.config import DataConfig
from tl_desktop.engine.data.audit import Audit
from tl_desktop.engine.data.dataset import scan_dataset
from tl_desktop.engine.data.images import ImageProperties
from tl_desktop.engine.data.shortcuts import (
    find_shortcuts,
    property_baseline,
    property_values,
    shortcut_warnings,
)

FLOWERS = Path(__file__).resolve().parents[3] / "shared" / "data" / "flowers12" / "train"


def facts(fmt: str = "PNG", size: int = 64, colour: str = "8-bit colour", **extra) -> ImageProperties:
    return ImageProperties(size, size, fmt, colour, **extra)


def test_a_format_held_by_one_class_only_is_found_once_with_two_classes():
    labels = ["x"] * 10 + ["y"] * 10
    images = [facts("JPEG", jpeg_quality=75)] * 10 + [facts("PNG")] * 10
    findings = find_shortcuts(labels, [property_values(f) for f in images], ["x", "y"])
    assert {(f.class_name, f.prop, f.value) for f in findings} == {("x", "file format", "JPEG"),
                                                                 ("x", "JPEG quality", "about 75")}
    assert findings[0].share_in == 1.0 and findings[0].share_out == 0.0 and findings[0].others == "mostly PNG"


@pytest.mark.parametrize("x_jpegs,y_jpegs,found", [(9, 2, True), (8, 0, False), (9, 3, False)])
def test_the_thresholds_are_ninety_and_ten_percent(x_jpegs, y_jpegs, found):
    labels = ["x"] * 10 + ["y"] * 20
    images = ([facts("JPEG")] * x_jpegs + [facts("PNG")] * (10 - x_jpegs)
              + [facts("JPEG")] * y_jpegs + [facts("PNG")] * (20 - y_jpegs))
    findings = find_shortcuts(labels, [property_values(f) for f in images], ["x", "y"])
    assert [(f.class_name, f.prop) for f in findings if f.prop == "file format"] == ([("x", "file format")] if found else [])


def test_the_properties_only_baseline_is_chance_on_identical_files_and_high_on_telling_ones():
    labels = ["a"] * 12 + ["b"] * 12 + ["c"] * 12
    same = property_baseline(labels, [facts()] * 36)
    assert same is not None and same.balanced_accuracy == pytest.approx(1 / 3) and not same.alarming
    telling = [facts("PNG", 64)] * 12 + [facts("JPEG", 80, jpeg_quality=70)] * 12 + [facts("BMP", 100)] * 12
    baseline = property_baseline(labels, telling)
    assert baseline.balanced_accuracy == 1.0 and baseline.chance == pytest.approx(1 / 3) and baseline.alarming
    assert property_baseline(["a", "b", "b"], [facts()] * 3) is None  # one image of 'a': nothing to cross-validate


def test_the_warning_names_the_class_the_property_and_what_to_do():
    labels = ["scanner"] * 10 + ["phone"] * 10 + ["other"] * 10
    images = ([facts("DICOM", 512, "12-bit grayscale (MONOCHROME2)", manufacturer="Acme Medical")] * 10
              + [facts("JPEG", 400, camera="Pixel 7")] * 10 + [facts("JPEG", 300, camera="Pixel 7")] * 10)
    findings = find_shortcuts(labels, [property_values(f) for f in images], ["scanner", "phone", "other"])
    warnings = shortcut_warnings(findings, property_baseline(labels, images))
    scanner = next(w for w in warnings if w.startswith("Class 'scanner'"))
    assert "all of its images are DICOM files" in scanner and "manufacturer 'Acme Medical'" in scanner
    assert "accuracy will look better than it is" in scanner and "same devices" in scanner
    assert "balanced accuracy" in scanner  # the properties-only baseline backs it up


def _copy_flowers(root: Path, classes: list[str], per_class: int, convert: dict[str, str]) -> Path:
    """A few flowers per class; ``convert`` maps a class to "jpeg-varied" or "png" (else copied unchanged)."""
    rng = random.Random(7)
    for name in classes:
        (root / name).mkdir(parents=True)
        for source in sorted((FLOWERS / name).iterdir())[:per_class]:
            how = convert.get(name)
            if how is None:
                (root / name / source.name).write_bytes(source.read_bytes())
                continue
            with Image.open(source) as image:
                picture = image.convert("RGB")
            if how == "png":
                picture.convert("L").save(root / name / (source.stem + ".png"))
            else:
                side = rng.randrange(150, 420)
                picture.resize((side, rng.randrange(150, 420))).save(root / name / source.name, quality=rng.randrange(60, 96))
    return root


@pytest.mark.skipif(not FLOWERS.is_dir(), reason="needs ../shared/data/flowers12")
def test_real_flowers_warn_only_when_one_class_alone_is_varied_jpegs(tmp_path):
    classes = sorted(p.name for p in FLOWERS.iterdir())[:3]
    honest = scan_dataset(DataConfig(root=str(_copy_flowers(tmp_path / "honest", classes, 24, {})))).audit
    assert honest.shortcuts == [] and not any("differs from the others in its files" in w for w in honest.warnings)
    assert not honest.property_baseline.alarming
    odd = {classes[0]: "jpeg-varied", classes[1]: "png", classes[2]: "png"}
    audit = scan_dataset(DataConfig(root=str(_copy_flowers(tmp_path / "odd", classes, 24, odd)))).audit
    lines = audit.summary_lines()
    warned = [line for line in lines if line.startswith(f"Warning: Class '{classes[0]}' differs")]
    assert len(warned) == 1 and "are JPEG files" in warned[0] and "mostly PNG" in warned[0]
    # the properties tell the JPEG class from the two PNG classes, not those two apart: about 2/3, chance 1/3
    assert 0.6 <= audit.property_baseline.balanced_accuracy <= 0.75
    assert any(line.startswith("Properties-only baseline: ") and "(chance 33%" in line for line in lines)
    again = Audit.from_dict(audit.to_dict())
    assert again.shortcuts == audit.shortcuts and again.property_baseline == audit.property_baseline

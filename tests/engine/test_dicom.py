"""DICOM files (written with pydicom) become the windowed 8-bit picture a viewer shows, everywhere images are read."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from dicom_writer import MARKERS, write_dicom, write_video_dicom
from pydicom.uid import JPEG2000Lossless, RLELossless

from tl_desktop.config import ConfigError, DataConfig
from tl_desktop.engine.data.dataset import scan_dataset
from tl_desktop.engine.data.dicom import (
    DicomReading,
    has_preamble,
    hashed_group,
    read_tag,
)
from tl_desktop.engine.data.images import (
    ImageLoadError,
    is_supported_file,
    load_rgb,
    probe_properties,
)
from tl_desktop.engine.data.preprocess import Preprocessing, load_for_model

RAMP = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 4096)


def grey(path: Path, **kwargs) -> np.ndarray:
    image = load_rgb(path, **kwargs)
    assert image.mode == "RGB"
    pixels = np.asarray(image)
    assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
    return pixels[..., 0]


def test_monochrome2_without_a_window_spans_its_value_range(tmp_path):
    pixels = grey(write_dicom(tmp_path / "a.dcm", RAMP, bits_stored=12))
    assert pixels.min() == 0 and pixels.max() == 255
    assert pixels[0, 0] == 0 and pixels[-1, -1] == 255 and (np.diff(pixels[0].astype(int)) >= 0).all()


def test_monochrome1_is_inverted(tmp_path):
    normal = grey(write_dicom(tmp_path / "m2.dcm", RAMP, bits_stored=12))
    inverted = grey(write_dicom(tmp_path / "m1.dcm", RAMP, photometric="MONOCHROME1", bits_stored=12))
    assert (inverted == 255 - normal).all()


def test_rescale_then_the_files_window(tmp_path):
    stored = np.array([[0, 500, 1500, 250]], dtype=np.uint16)  # HU = 2 * stored - 1000: -1000, 0, 2000, -500
    path = write_dicom(tmp_path / "ct.dcm", stored, bits_stored=12, slope=2.0, intercept=-1000, window=(0, 2000))
    # linear window centre 0, width 2000: -1000 and below black, 0 mid-grey, 1000 and above white
    assert grey(path)[0].tolist() == [0, 128, 255, 64]


def test_a_window_setting_overrides_the_files_window(tmp_path):
    stored = np.array([[0, 500, 1500, 480]], dtype=np.uint16)
    path = write_dicom(tmp_path / "ct.dcm", stored, bits_stored=12, slope=2.0, intercept=-1000, window=(0, 2000))
    lung = DicomReading.from_settings("-40,80")
    assert grey(path, dicom=lung)[0].tolist() == [0, 255, 255, 129]
    pre = Preprocessing(32, 36, (0.5,) * 3, (0.5,) * 3, dicom_window="-40,80")
    assert np.asarray(load_for_model(path, pre))[0, :, 0].tolist() == [0, 255, 255, 129]
    assert Preprocessing.from_dict(pre.to_dict()) == pre


def test_sixteen_bit_values_keep_their_full_range(tmp_path):
    values = np.array([[0, 16384, 32768, 65535]], dtype=np.uint16)
    assert grey(write_dicom(tmp_path / "16.dcm", values, bits_stored=16))[0].tolist() == [0, 64, 128, 255]


def test_rgb_colours_are_kept(tmp_path):
    colour = np.zeros((4, 4, 3), dtype=np.uint8)
    colour[..., 0], colour[..., 1], colour[..., 2] = 200, 10, 60
    image = load_rgb(write_dicom(tmp_path / "rgb.dcm", colour, photometric="RGB"))
    assert np.asarray(image)[0, 0].tolist() == [200, 10, 60]


def test_multi_frame_uses_the_middle_frame_unless_told(tmp_path):
    frames = np.stack([np.full((8, 8), v, dtype=np.uint16) for v in (0, 1024, 2048, 4095)])
    path = write_dicom(tmp_path / "cine.dcm", frames, bits_stored=12, window=(2047.5, 4096))
    level = {rule: grey(path, dicom=DicomReading(frame=rule))[0, 0] for rule in ("middle", "first", "last", "2", "9")}
    assert level == {"middle": 128, "first": 0, "last": 255, "2": 64, "9": 255}
    assert probe_properties(path).frames == 4


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless])
def test_compressed_transfer_syntaxes_decode_to_the_same_picture(tmp_path, syntax):
    plain = grey(write_dicom(tmp_path / "plain.dcm", RAMP, bits_stored=12))
    packed = write_dicom(tmp_path / "packed.dcm", RAMP, bits_stored=12, transfer_syntax=syntax)
    assert probe_properties(packed).compression == syntax.name
    assert (grey(packed) == plain).all()


def test_a_missing_codec_names_the_transfer_syntax(tmp_path):
    path = write_video_dicom(tmp_path / "video.dcm")
    with pytest.raises(ImageLoadError) as caught:
        load_rgb(path)
    assert "MPEG2 Main Profile / Main Level" in caught.value.reason and "1.2.840.10008.1.2.4.100" in caught.value.reason


def test_scan_finds_extensionless_dicom_and_lists_an_undecodable_one(tmp_path):
    for cls, level in (("a", 1000), ("b", 3000)):
        for i in range(4):
            write_dicom(tmp_path / cls / f"IM{i:04d}", np.full((16, 16), level + i, dtype=np.uint16), bits_stored=12)
    (tmp_path / "a" / "README").write_text("not an image, no preamble")
    write_video_dicom(tmp_path / "b" / "video.dcm")
    frames = np.stack([np.full((16, 16), v, dtype=np.uint16) for v in (0, 9, 99)])
    write_dicom(tmp_path / "b" / "cine", frames, bits_stored=12)
    audit = scan_dataset(DataConfig(root=str(tmp_path))).audit
    assert audit.class_totals() == {"a": 4, "b": 5} and audit.ignored_files == 1
    assert [(Path(p).name, "MPEG2 Main Profile" in r) for p, r in audit.unreadable] == [("video.dcm", True)]
    assert audit.dicom_files == 9 and audit.dicom_multi_frame == 1
    assert any("1 hold several frames and give their middle frame" in line for line in audit.summary_lines())


def test_preamble_is_not_read_from_a_pipe(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert not has_preamble(fifo) and not is_supported_file(fifo)  # returns at once instead of blocking


def test_read_tag_and_the_salted_hash_for_grouping(tmp_path):
    path = write_dicom(tmp_path / "p.dcm", RAMP, bits_stored=12, tags=MARKERS)
    assert read_tag(path, "PatientID") == MARKERS["PatientID"]
    assert read_tag(path, "OtherPatientIDs") == ""
    hashed = hashed_group(read_tag(path, "PatientID"), "salt-1")
    assert hashed == hashed_group(MARKERS["PatientID"], "salt-1") and len(hashed) == 16
    assert hashed != hashed_group(MARKERS["PatientID"], "salt-2") and MARKERS["PatientID"] not in hashed
    assert hashed_group("", "salt-1") == ""


@pytest.mark.parametrize("window,frame,ok", [
    ("auto", "middle", True), ("40,400", "last", True), ("-600, 1500", "3", True),
    ("40", "middle", False), ("40,0", "middle", False), ("auto", "0", False), ("auto", "centre", False),
])
def test_dicom_settings_are_validated(window, frame, ok):
    config = DataConfig(root="x", dicom_window=window, dicom_frame=frame)
    if ok:
        config.validate()
    else:
        with pytest.raises(ConfigError, match="dicom_"):
            config.validate()

"""Write small DICOM files with pydicom for the tests (no real patient data anywhere)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import compress, set_pixel_data
from pydicom.uid import (
    MPEG2MPML,
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)

# Tag values a privacy test can search for: each is unique enough that a hit is never a coincidence.
MARKERS = {
    "PatientName": "Zebulon^Quixmarker",
    "PatientID": "PIDMARK-73915",
    "PatientBirthDate": "19011231",
    "AccessionNumber": "ACCMARK88412",
    "InstitutionName": "Instmarker Hospital",
    "StudyDate": "19020304",
}


def write_dicom(
    path: Path, pixels: np.ndarray, *, photometric: str = "MONOCHROME2", bits_stored: int | None = None,
    slope: float | None = None, intercept: float | None = None, window: tuple[float, float] | None = None,
    tags: dict[str, str] | None = None, transfer_syntax: str = ExplicitVRLittleEndian,
) -> Path:
    """A DICOM file holding ``pixels`` (rows x cols, frames x rows x cols, or ... x 3 for colour)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "OT"
    for keyword, value in (tags or {}).items():
        setattr(ds, keyword, value)
    bits = bits_stored or (8 if pixels.dtype == np.uint8 else 16)
    set_pixel_data(ds, pixels, photometric, bits)
    if slope is not None or intercept is not None:
        ds.RescaleSlope = slope if slope is not None else 1
        ds.RescaleIntercept = intercept if intercept is not None else 0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if transfer_syntax != ExplicitVRLittleEndian:
        compress(ds, transfer_syntax)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_video_dicom(path: Path) -> Path:
    """A DICOM file whose pixel data claim MPEG-2 video, a transfer syntax no installed decoder reads."""
    source = write_dicom(path, np.zeros((8, 8), dtype=np.uint8))
    ds = pydicom.dcmread(source)
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(60)])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path

"""What an exported ONNX file says about itself (``metadata_props``, all text): enough for a program
without tl_desktop to preprocess images and name the classes, and for tl_desktop to check it.

Keys: ``tl_desktop.format`` (marks a tl_desktop export), ``classes`` (JSON list), ``preprocessing`` (JSON:
resize_size, input_size, mean, std, interpolation, colour_mode, layout, pixel_scale, DICOM reading),
``temperature``, ``backbone``, ``tl_desktop_version``, ``created``, ``metrics`` (JSON).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tl_desktop import __version__
from tl_desktop.engine.models.bundle import BundleMeta, utc_now
from tl_desktop.engine.models.meta_checks import (
    MetaProblem,
    check_classes,
    check_preprocessing,
    check_temperature,
)

FORMAT_KEY = "tl_desktop.format"
FORMAT = "tl_desktop-onnx-1"
INPUT_NAME = "input"
OUTPUT_NAMES = ("logits", "probabilities")
# How pixels become model input, spelled out for programs that do not know tl_desktop's conventions.
PIXEL_RULES = {"colour_mode": "RGB", "layout": "NCHW", "pixel_scale": "1/255",
               "resize": "short side to resize_size, then centre crop input_size"}


class OnnxMetaError(ValueError):
    """The ONNX file's metadata is missing or unusable; the message says why."""


def metadata_props(meta: BundleMeta) -> dict[str, str]:
    """The metadata an export carries, from the model file's metadata."""
    return {
        FORMAT_KEY: FORMAT,
        "classes": json.dumps(list(meta.classes)),
        "preprocessing": json.dumps({**meta.preprocessing, **PIXEL_RULES}),
        "temperature": repr(float(meta.temperature)),
        "backbone": meta.backbone,
        "tl_desktop_version": __version__,
        "created": utc_now(),
        "model_created": meta.created,
        "metrics": json.dumps(meta.metrics, default=str),
        "versions": json.dumps(meta.versions),
    }


def _json_field(props: Mapping[str, str], name: str) -> Any:
    if name not in props:
        raise OnnxMetaError(f"its metadata lacks {name!r}")
    try:
        return json.loads(props[name])
    except json.JSONDecodeError as exc:
        raise OnnxMetaError(f"its metadata {name!r} is not valid JSON ({exc})") from None


def meta_from_props(props: Mapping[str, str]) -> BundleMeta:
    """The model's metadata from an export's ``metadata_props``, checked as a model file's would be."""
    if props.get(FORMAT_KEY) != FORMAT:
        found = props.get(FORMAT_KEY)
        raise OnnxMetaError("it is not a tl_desktop export (it has no tl_desktop metadata)" if found is None else
                            f"it was written by a newer tl_desktop (format {found!r}, this version reads {FORMAT!r})")
    classes = _json_field(props, "classes")
    pre = _json_field(props, "preprocessing")
    metrics = _json_field(props, "metrics") if "metrics" in props else {}
    try:
        temperature = float(props.get("temperature", "1.0"))
    except ValueError:
        raise OnnxMetaError(f"its temperature is not a number: {props.get('temperature')!r}") from None
    try:
        check_classes(classes)
        check_preprocessing(pre)
        check_temperature(temperature)
    except MetaProblem as exc:
        raise OnnxMetaError(str(exc)) from None
    if not isinstance(metrics, dict):
        raise OnnxMetaError(f"its metrics must be an object, got {metrics!r}")
    versions = _json_field(props, "versions") if "versions" in props else {}
    if not isinstance(versions, dict):
        versions = {}
    preprocessing = {k: v for k, v in pre.items() if k not in PIXEL_RULES}
    return BundleMeta(backbone=str(props.get("backbone", "")), classes=classes, preprocessing=preprocessing,
                      metrics=metrics, versions={str(k): str(v) for k, v in versions.items()},
                      temperature=temperature, created=str(props.get("model_created", props.get("created", ""))))

"""Reading an ONNX file safely: it must parse, pass onnx's checker, keep any external data inside its own
folder (a path that leaves it is refused, never followed), carry tl_desktop's metadata, and take images of
the size its metadata names. onnxruntime then gets the checked bytes, never the path."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tl_desktop.engine.deploy.metadata import (
    INPUT_NAME,
    OUTPUT_NAMES,
    OnnxMetaError,
    meta_from_props,
)
from tl_desktop.engine.models.bundle import BundleMeta

MAX_FILE_BYTES = 4 << 30  # the largest backbone exports at ~350 MB; more is not a classifier of ours


class OnnxFileError(Exception):
    """An ONNX file cannot be used; the message names the file and says why."""


def _tensors(graph: Any) -> Iterator[Any]:
    """Every tensor stored in ``graph`` and its subgraphs (initializers and constant attributes)."""
    yield from graph.initializer
    yield from (sparse.values for sparse in graph.sparse_initializer)
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from _tensors(subgraph)


def _check_external_data(model: Any, path: Path) -> bool:
    """Refuse external data that is missing or lies outside the file's folder; True when there is some."""
    from onnx import TensorProto

    folder = path.parent.resolve()
    found = False
    for tensor in _tensors(model.graph):
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        found = True
        location = next((entry.value for entry in tensor.external_data if entry.key == "location"), "")
        target = (folder / location).resolve()
        if not location or os.path.isabs(location) or not target.is_relative_to(folder):
            raise OnnxFileError(f"{path} refers to data outside its folder ({location!r} for tensor "
                                f"{tensor.name!r}); refused")
        if not target.is_file():
            raise OnnxFileError(f"{path} needs the data file {location!r} next to it, which is missing")
    return found


def _parse(path: Path) -> Any:
    import onnx
    from google.protobuf.message import DecodeError

    try:
        size = path.stat().st_size
    except OSError as exc:
        raise OnnxFileError(f"cannot read ONNX file {path}: {exc}") from exc
    if size > MAX_FILE_BYTES:
        raise OnnxFileError(f"{path} holds {size:,} bytes, more than any exported classifier; refused")
    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise OnnxFileError(f"{path} is not an ONNX file or it is damaged ({exc})") from exc
    except OSError as exc:
        raise OnnxFileError(f"cannot read ONNX file {path}: {exc}") from exc
    if not model.graph.node:
        raise OnnxFileError(f"{path} is not an ONNX file or it is damaged (it holds no network)")
    return model


def _check_signature(model: Any, meta: BundleMeta, path: Path) -> None:
    """One image input of the metadata's size and both outputs, as tl_desktop exports them."""
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    outputs = {o.name for o in model.graph.output}
    if [i.name for i in inputs] != [INPUT_NAME] or not set(OUTPUT_NAMES) <= outputs:
        raise OnnxFileError(f"{path} does not have the input {INPUT_NAME!r} and the outputs "
                            f"{' and '.join(map(repr, OUTPUT_NAMES))} of a tl_desktop export")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    size = meta.preprocessing["input_size"]
    if len(dims) != 4 or dims[1:] != [3, size, size]:
        raise OnnxFileError(f"{path} takes input of shape {dims}, but its metadata describes "
                            f"{size}x{size} RGB images")


def read_onnx_file(path: str | Path) -> tuple[bytes, BundleMeta]:
    """The checked model bytes (external data, if any, inlined) and the metadata of a tl_desktop export."""
    import onnx

    path = Path(path).expanduser()
    if path.is_dir():
        raise OnnxFileError(f"{path} is a folder, not an ONNX file")
    if not path.is_file():
        raise OnnxFileError(f"ONNX file {path} does not exist")
    model = _parse(path)
    try:
        meta = meta_from_props({p.key: p.value for p in model.metadata_props})
    except OnnxMetaError as exc:
        raise OnnxFileError(f"{path} cannot be used: {exc}. Export models with 'tl-desktop export "
                            "--format onnx'") from None
    if _check_external_data(model, path):
        try:
            onnx.load_external_data_for_model(model, str(path.parent))
        except (OSError, ValueError) as exc:
            raise OnnxFileError(f"{path}: its external data cannot be read ({exc})") from exc
    _check_signature(model, meta, path)
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as exc:
        raise OnnxFileError(f"{path} is damaged: {str(exc).splitlines()[0]}") from exc
    return model.SerializeToString(), meta

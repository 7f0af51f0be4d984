"""Feature cache for frozen backbones: run the frozen part of the network once, train on its output.

When only the head trains, the pooled features of every training image are computed once (with
augmentation: ``views`` fixed augmented views per image, one used per epoch, cycling); the head
then trains at memory speed. When the last N blocks train, the activations at the freeze boundary
are cached the same way and training resumes from them with ``model.forward_from``. Frozen blocks
run in eval mode (BatchNorm included), so their output for a given input image is fixed: caching
does not change what is computed.

The frozen part runs on onnxruntime where that is faster and a checked conversion is at hand
(:mod:`tl_desktop.engine.caching.frozen_onnx`), else on torch. Entries are keyed by everything that
changes the stored numbers (files with sizes and mtimes, preprocessing, backbone, a hash of the frozen
weights, freeze boundary, views, augmentation preset, seed, storage dtype, the engine that ran it) and live under ``<cache dir>/features/<key>``. An entry is checked for NaN or
infinite numbers whenever it is loaded; a damaged one is dropped and computed again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from tl_desktop.engine.caching.decoded_images import DecodedImages
from tl_desktop.engine.caching.frozen_onnx import FrozenRunner, frozen_runner
from tl_desktop.engine.caching.store import CacheStore, cache_key, files_fingerprint
from tl_desktop.engine.data.preprocess import Preprocessing
from tl_desktop.engine.deploy.export import FrozenPart
from tl_desktop.engine.runtime.device import to_model_input
from tl_desktop.engine.runtime.inference import ENGINES, inference_engine
from tl_desktop.engine.runtime.stop import StopToken

FP16_THRESHOLD_BYTES = 256 * 1024**2
_log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]
ImageTransform = Callable[[torch.Tensor], torch.Tensor]


def weights_identity(model: nn.Module, stop_block: int) -> str:
    """SHA-256 of the parameters and buffers of ``model.blocks[:stop_block]`` (the frozen part)."""
    digest = hashlib.sha256()
    for index in range(stop_block):
        for name, tensor in model.blocks[index].state_dict().items():
            digest.update(f"{index}.{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
            digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class FeatureRequest:
    """What to cache: the output of ``blocks[:boundary]`` (pooled when ``pooled``) for each view."""

    boundary: int
    pooled: bool
    views: int
    augmentation: str
    seed: int

    @property
    def start_block(self) -> int:
        """Where training resumes: the first block that trains (``num_blocks`` when pooled)."""
        return self.boundary


@dataclass(frozen=True)
class FeatureBlock:
    """The images (``rows``) and views one process computes of a feature entry."""

    rows: range
    views: tuple[int, ...]


class FeatureShards(Protocol):
    """How the processes of a distributed run share one feature entry
    (:class:`tl_desktop.engine.training.sharded_features.RankShards`)."""

    def all_found(self, found: bool) -> bool:
        """Whether every process found the entry in its cache (else they compute it together)."""

    def compute(self, model: nn.Module, images: DecodedImages, labels: Sequence[int], transform: ImageTransform,
                request: FeatureRequest, batch_size: int, device: torch.device, store: CacheStore,
                progress: Progress | None, stop: StopToken | None, pool_from: FeatureSet | None,
                shape: tuple[int, ...], dtype: type, keys: dict[str, str]) -> FeatureSet:
        """This process's block of the entry (pooled from ``pool_from`` when given), assembled with the others'."""


class FeatureSet:
    """Cached outputs of the frozen part: ``values[i, v]`` for image ``i`` and view ``v``."""

    def __init__(self, values: np.ndarray, labels: Sequence[int], request: FeatureRequest, key: str,
                 from_cache: bool, rows: np.ndarray | None = None, engine: str = "torch") -> None:
        self.values = values
        self.engine = engine  # what ran the frozen part: "torch" or "onnxruntime"
        self.labels = torch.as_tensor(list(labels), dtype=torch.long)
        self.request = request
        self.key = key
        self.from_cache = from_cache
        self.rows = rows  # image i of this set is row rows[i] of values (None: row i)

    def __len__(self) -> int:
        return int(self.values.shape[0] if self.rows is None else self.rows.shape[0])

    def subset(self, indices: Sequence[int]) -> "FeatureSet":
        """The images at ``indices`` of this set, sharing its stored values (nothing is copied)."""
        picked = np.asarray(indices, dtype=np.int64)
        rows = picked if self.rows is None else self.rows[picked]
        return FeatureSet(self.values, self.labels[torch.from_numpy(picked)].tolist(), self.request, self.key,
                          self.from_cache, rows, self.engine)

    @property
    def views(self) -> int:
        return int(self.values.shape[1])

    def view_for_epoch(self, epoch: int) -> np.ndarray:
        """One view per image for ``epoch``: each image cycles through its views in its own random order."""
        if self.views == 1:
            return np.zeros(len(self), dtype=np.int64)
        rng = np.random.default_rng(self.request.seed)
        orders = np.argsort(rng.random((len(self), self.views)), axis=1)
        return orders[:, epoch % self.views]

    def gather(self, indices: Sequence[int], views: np.ndarray) -> torch.Tensor:
        """Float32 tensor of the chosen views for ``indices``."""
        idx = np.asarray(indices, dtype=np.int64)
        rows = idx if self.rows is None else self.rows[idx]
        return torch.from_numpy(np.ascontiguousarray(self.values[rows, views[idx]])).float()

    def batches(self, batch_indices: Sequence[Sequence[int]], epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(inputs, labels) for each list of image indices, the view chosen for ``epoch``."""
        views = self.view_for_epoch(epoch)
        for indices in batch_indices:
            yield self.gather(indices, views), self.labels[torch.as_tensor(list(indices), dtype=torch.long)]


def feature_key(paths: Sequence[str], pre: Preprocessing, backbone: str, weights_id: str,
                request: FeatureRequest, dtype: str, engine: str = "torch") -> str:
    """The cache key: any change to files, preprocessing, backbone, weights, boundary, views,
    augmentation, seed, storage dtype or engine gives a new key."""
    return cache_key({
        "files": files_fingerprint(paths),
        "count": len(paths),
        "preprocessing": pre.to_dict(),
        "backbone": backbone,
        "weights": weights_id,
        "boundary": request.boundary,
        "pooled": request.pooled,
        "views": request.views,
        "augmentation": request.augmentation,
        "seed": request.seed,
        "dtype": dtype,
        "engine": engine,
    })


def _frozen_output(model: nn.Module, x: torch.Tensor, request: FeatureRequest) -> torch.Tensor:
    return FrozenPart(model, request.boundary, request.pooled)(x)


def output_shape(model: nn.Module, request: FeatureRequest, input_size: int,
                 device: torch.device) -> tuple[int, ...]:
    """Shape of one image's frozen-part output (from a blank input; nothing is decoded)."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            blank = torch.zeros(1, 3, input_size, input_size)
            out = _frozen_output(model, to_model_input(blank, model, device), request)
    finally:
        model.train(was_training)
    return tuple(out.shape[1:])


def activation_bytes(model: nn.Module, boundary: int, input_size: int, count: int) -> int:
    """Bytes (float32) of ``count`` cached activations at the input of block ``boundary``."""
    request = FeatureRequest(boundary=boundary, pooled=False, views=1, augmentation="none", seed=0)
    device = next(model.parameters()).device
    return int(np.prod(output_shape(model, request, input_size, device))) * 4 * count


def compute_features(
    model: nn.Module,
    images: DecodedImages,
    transform: ImageTransform,
    request: FeatureRequest,
    out: np.ndarray,
    batch_size: int,
    device: torch.device,
    progress: Progress | None = None,
    stop: StopToken | None = None,
    runner: FrozenRunner | None = None,
    block: FeatureBlock | None = None,
) -> None:
    """Fill ``out[i, v]`` with the frozen part's output for view ``v`` of image ``i`` (run by ``runner``
    when given, else by torch); with ``block``, only its images and views, ``out`` holding just those."""
    block = block or FeatureBlock(range(len(images)), tuple(range(request.views)))
    rows = block.rows
    total = len(rows) * len(block.views)
    was_training = model.training
    model.eval()
    try:
        # fork_rng: building views must not move the global RNG the training loop (dropout) uses next.
        with torch.random.fork_rng(devices=[]), torch.inference_mode():
            for column, view in enumerate(block.views):
                torch.manual_seed(request.seed * 1000 + view)
                for start in range(rows.start, rows.stop, batch_size):
                    if stop is not None:
                        stop.raise_if_requested()
                    stop_index = min(rows.stop, start + batch_size)
                    batch = torch.stack([transform(images[i]) for i in range(start, stop_index)])
                    if runner is not None:
                        values = runner.run(batch)
                    else:
                        with torch.autocast("cuda", dtype=torch.float16, enabled=device.type == "cuda"):
                            values = _frozen_output(model, to_model_input(batch, model, device), request)
                        values = values.float().cpu().numpy()
                    out[start - rows.start:stop_index - rows.start, column] = values.astype(out.dtype, copy=False)
                    if progress is not None:
                        progress(column * len(rows) + stop_index - rows.start, total)
    finally:
        model.train(was_training)


def pool_from_activations(
    model: nn.Module,
    activations: FeatureSet,
    out: np.ndarray,
    batch_size: int,
    device: torch.device,
    progress: Progress | None = None,
    stop: StopToken | None = None,
    rows: range | None = None,
) -> None:
    """Fill ``out[i, v]`` with pooled features computed from cached boundary activations (same views);
    with ``rows``, only those images, ``out`` holding just them."""
    count, views, start_block = len(activations), activations.views, activations.request.boundary
    rows = rows if rows is not None else range(count)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for view in range(views):
                chosen = np.full(count, view, dtype=np.int64)
                for start in range(rows.start, rows.stop, batch_size):
                    if stop is not None:
                        stop.raise_if_requested()
                    stop_index = min(rows.stop, start + batch_size)
                    batch = to_model_input(activations.gather(range(start, stop_index), chosen), model, device)
                    with torch.autocast("cuda", dtype=torch.float16, enabled=device.type == "cuda"):
                        values = model.pool(model.run_blocks(batch, start_block))
                    out[start - rows.start:stop_index - rows.start, view] = (
                        values.float().cpu().numpy().astype(out.dtype, copy=False))
                    if progress is not None:
                        progress(view * len(rows) + stop_index - rows.start, len(rows) * views)
    finally:
        model.train(was_training)


def cached_features(
    model: nn.Module,
    images: DecodedImages,
    labels: Sequence[int],
    transform: ImageTransform,
    request: FeatureRequest,
    pre: Preprocessing,
    batch_size: int,
    device: torch.device,
    store: CacheStore | None = None,
    progress: Progress | None = None,
    stop: StopToken | None = None,
    activations: FeatureSet | None = None,
    shards: FeatureShards | None = None,
) -> FeatureSet:
    """Load the features for ``request`` from the cache, or compute and store them.

    With ``activations`` (cached float32 boundary activations of the same images and views), pooled
    features are computed from them: only the blocks after the boundary run. With ``shards`` (the
    processes of a distributed run), each process computes its block and the blocks are assembled.
    """
    store = store or CacheStore()
    backbone = str(getattr(model, "backbone_name", type(model).__name__))
    shape = output_shape(model, request, pre.input_size, device)
    per_view = int(np.prod(shape)) * 4
    dtype = np.float16 if per_view * len(images) * request.views > FP16_THRESHOLD_BYTES else np.float32
    weights_id = weights_identity(model, request.boundary)
    preferred = inference_engine(device.type)
    keys = {engine: feature_key(images.paths, pre, backbone, weights_id, request, np.dtype(dtype).name, engine)
            for engine in sorted(ENGINES, key=lambda e: e != preferred)}
    hit = _find_entry(store, keys, (len(images), request.views, *shape), labels, request)
    pool_from = _can_pool_from(activations, request, len(images))
    if shards is not None and not shards.all_found(hit is not None):
        return shards.compute(model, images, labels, transform, request, batch_size, device, store, progress, stop,
                              activations if pool_from else None, (len(images), request.views, *shape), dtype, keys)
    if hit is not None:
        return hit
    runner = None
    if pool_from:
        engine = activations.engine
    else:
        runner = frozen_runner(model, request.boundary, request.pooled, pre.input_size, weights_id,
                               len(images) * request.views, device, store)
        engine = "torch" if runner is None else "onnxruntime"
    key = keys[engine]
    with store.writing("features", key, entry_meta(model, request, (len(images), request.views, *shape), dtype,
                                                   engine)) as folder:
        out = np.lib.format.open_memmap(folder / "values.npy", mode="w+", dtype=dtype,
                                        shape=(len(images), request.views, *shape))
        if pool_from:
            pool_from_activations(model, activations, out, batch_size, device, progress, stop)
        else:
            compute_features(model, images, transform, request, out, batch_size, device, progress, stop, runner)
        out.flush()
        del out
    values = _open_values(store.entry_dir("features", key))
    if values is None:
        raise OSError(f"the feature cache entry {key} vanished right after it was written")
    return FeatureSet(values, labels, request, key, from_cache=False, engine=engine)


def entry_meta(model: nn.Module, request: FeatureRequest, shape: tuple[int, ...], dtype: type,
               engine: str) -> dict[str, Any]:
    """What a feature entry's ``entry.json`` says about it (``shape``: images x views x one output)."""
    backbone = str(getattr(model, "backbone_name", type(model).__name__))
    part = "pooled features" if request.pooled else f"block {request.boundary} input"
    return {"description": f"{backbone} {part}, {shape[0]} images x {request.views} views ({engine})",
            "shape": list(shape), "dtype": np.dtype(dtype).name}


def _find_entry(store: CacheStore, keys: dict[str, str], shape: tuple[int, ...], labels: Sequence[int],
                request: FeatureRequest) -> FeatureSet | None:
    """The stored entry under one of ``keys`` (the chosen engine's first; both agree within float tolerance)."""
    for engine, key in keys.items():
        found = _cached(store, key, shape)
        if found is not None:
            return FeatureSet(found, labels, request, key, from_cache=True, engine=engine)
    return None


def _cached(store: CacheStore, key: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """The stored values of entry ``key`` when it exists, has ``shape`` and holds only finite numbers (a
    damaged entry is dropped)."""
    found = store.lookup("features", key)
    if found is None:
        return None
    values = _open_values(found)
    if values is None or values.shape != shape:
        return None
    if all_finite(values):
        return values
    del values  # let go of the memory map before the folder is deleted
    _log.warning("the cached features %s held NaN or infinite values (a damaged cache entry); they were "
                 "dropped and are computed again", key)
    store.drop("features", key)
    return None


def _can_pool_from(activations: FeatureSet | None, request: FeatureRequest, count: int) -> bool:
    if activations is None or not request.pooled:
        return False
    source = activations.request
    return (len(activations) == count and activations.values.dtype == np.float32 and not source.pooled
            and (source.views, source.augmentation, source.seed) == (request.views, request.augmentation,
                                                                     request.seed))


def all_finite(values: np.ndarray, chunk_bytes: int = 64 * 1024**2) -> bool:
    """Whether every stored number is finite, read in chunks so a memory-mapped entry never loads whole."""
    if not len(values):
        return True
    step = max(1, chunk_bytes // max(1, values[0].nbytes))
    return all(bool(np.isfinite(values[start:start + step]).all()) for start in range(0, len(values), step))


def _open_values(folder: Path) -> np.ndarray | None:
    try:
        values = np.load(folder / "values.npy", mmap_mode="r")
        json.loads((folder / "entry.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    # Small entries (pooled features) are read into memory; large ones stay memory-mapped.
    return np.array(values) if values.nbytes <= FP16_THRESHOLD_BYTES else values

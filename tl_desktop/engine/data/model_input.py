"""Image files to model input: batches decoded, resized and normalised on every core, for prediction."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import torch

from tl_desktop.engine.data.preprocess import Preprocessing
from tl_desktop.engine.runtime.stop import StopToken


def decode_workers() -> int:
    """Decoder threads: one per core (Pillow decodes and torch resizes without holding the GIL)."""
    return max(1, min(4, os.cpu_count() or 1))


def _decode_into(batch: torch.Tensor, paths: Sequence[str], first: int, count: int, pre: Preprocessing) -> list[str]:
    """Decode ``paths[first:first + count]`` into rows of ``batch`` as model input; the failure reason
    (empty when it decoded) of each."""
    from tl_desktop.engine.data.images import ImageLoadError
    from tl_desktop.engine.data.preprocess import (
        load_for_model,
        model_pixels,
        normalise,
    )

    reasons = []
    for index in range(first, min(len(paths), first + count)):
        try:
            normalise(model_pixels(load_for_model(paths[index], pre), pre), pre, out=batch[index])
            reasons.append("")
        except ImageLoadError as exc:
            reasons.append(exc.reason or "cannot decode")
    return reasons


def input_batches(
    paths: Sequence[str], pre: Preprocessing, batch_size: int, stop: StopToken | None = None,
) -> Iterator[tuple[list[str], torch.Tensor | None, list[tuple[str, str]]]]:
    """(decoded paths, float32 NCHW channels_last model input, failures) per ``batch_size`` paths.

    Each batch is decoded, resized and normalised on every core (each decoder thread takes an equal
    share and writes its images straight into the batch, without the GIL and without a thread team),
    then the caller runs the model on all cores: on a small machine that beats preparing the next batch
    beside the model, whose thread team would wait for the core the decoder took. Unreadable files go
    to failures.
    """
    workers = decode_workers()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(paths), batch_size):
            if stop is not None:
                stop.raise_if_requested()
            chunk = [str(p) for p in paths[start:start + batch_size]]
            batch = torch.empty(len(chunk), pre.input_size, pre.input_size, 3).permute(0, 3, 1, 2)
            share = -(-len(chunk) // workers)
            parts = pool.map(partial(_decode_into, batch, chunk, count=share, pre=pre), range(0, len(chunk), share))
            reasons = [reason for part in parts for reason in part]
            ok = [index for index, reason in enumerate(reasons) if not reason]
            if len(ok) < len(chunk):
                batch = batch[ok].contiguous(memory_format=torch.channels_last)
            yield ([chunk[index] for index in ok], batch if ok else None,
                   [(path, reason) for path, reason in zip(chunk, reasons) if reason])

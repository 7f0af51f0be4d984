"""Decode every training image once: uint8 tensors resized to the preprocessing's resize size.

A 4000×3000 field photo costs ~200 ms to decode and resize and ~3 ms to augment from a small copy,
so each image is decoded (JPEG draft mode) and resized once, kept in memory as a uint8 CHW tensor up
to a memory budget, and spilled beyond it to a memory-mapped file under the cache folder. The short
side is resized by the eval transform's own :func:`preprocess.resized_pixels`, so centre-cropping a
cached image gives the same pixels as the eval transform on the original.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from tl_desktop.engine.caching.store import CacheStore
from tl_desktop.engine.data.model_input import decode_workers
from tl_desktop.engine.data.preprocess import (
    Preprocessing,
    load_for_model,
    resized_pixels,
)
from tl_desktop.engine.runtime.stop import StopToken

DEFAULT_MEMORY_BUDGET_BYTES = 1024**3
_CHUNK = 32

ImageTransform = Callable[[torch.Tensor], torch.Tensor]
Progress = Callable[[int, int], None]


class DecodedImages:
    """uint8 CHW tensors for ``paths``, in memory up to ``memory_budget_bytes`` then memory-mapped on disk."""

    def __init__(
        self,
        paths: Sequence[str],
        pre: Preprocessing,
        memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET_BYTES,
        store: CacheStore | None = None,
        progress: Progress | None = None,
        stop: StopToken | None = None,
        workers: int | None = None,
    ) -> None:
        self.paths = list(paths)
        self.pre = pre
        self.memory_budget_bytes = int(memory_budget_bytes)
        self.failures: list[tuple[str, str]] = []
        self._memory: list[torch.Tensor | None] = [None] * len(self.paths)
        self._spilled: dict[int, tuple[int, tuple[int, int, int]]] = {}
        self._spill_path: Path | None = None
        self._spill_map: np.memmap | None = None
        self.memory_bytes = 0
        self.spilled_bytes = 0
        self._build(store or CacheStore(), progress, stop, workers)

    def _build(self, store: CacheStore, progress: Progress | None, stop: StopToken | None,
               workers: int | None) -> None:
        from tl_desktop.engine.data.images import ImageLoadError

        total = len(self.paths)
        spill_handle = None
        workers = workers or decode_workers()

        def decode(index: int) -> tuple[int, torch.Tensor | None, str | None]:
            try:
                image = load_for_model(self.paths[index], self.pre)
                # numpy copies to CHW order without starting a torch thread team in this decoder thread
                return index, torch.from_numpy(np.ascontiguousarray(resized_pixels(image, self.pre).numpy())), None
            except ImageLoadError as exc:
                return index, None, exc.reason
            except (OSError, ValueError) as exc:
                return index, None, f"cannot decode: {exc}"

        try:
            # PIL releases the GIL while decoding, so threads decode ahead without new processes.
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for start in range(0, total, _CHUNK):
                    if stop is not None:
                        stop.raise_if_requested()
                    for index, tensor, reason in pool.map(decode, range(start, min(total, start + _CHUNK))):
                        if tensor is None:
                            self.failures.append((self.paths[index], reason or "cannot decode"))
                            continue
                        size = tensor.numel()
                        if self.memory_bytes + size <= self.memory_budget_bytes:
                            self._memory[index] = tensor
                            self.memory_bytes += size
                            continue
                        if spill_handle is None:
                            self._spill_path = store.scratch_file("images", ".u8")
                            spill_handle = open(self._spill_path, "wb")  # noqa: SIM115 - closed below
                        self._spilled[index] = (self.spilled_bytes, tuple(tensor.shape))  # type: ignore[assignment]
                        spill_handle.write(tensor.numpy().tobytes())
                        self.spilled_bytes += size
                    if progress is not None:
                        progress(min(total, start + _CHUNK), total)
        except BaseException:
            if spill_handle is not None:
                spill_handle.close()
            self.close()
            raise
        if spill_handle is not None:
            spill_handle.close()
            self._spill_map = np.memmap(self._spill_path, dtype=np.uint8, mode="r")

    def __len__(self) -> int:
        return len(self.paths)

    def ok(self, index: int) -> bool:
        """True when image ``index`` decoded."""
        return self._memory[index] is not None or index in self._spilled

    def __getitem__(self, index: int) -> torch.Tensor:
        tensor = self._memory[index]
        if tensor is not None:
            return tensor
        if index not in self._spilled or self._spill_map is None:
            raise KeyError(f"image {self.paths[index]} could not be decoded")
        offset, shape = self._spilled[index]
        count = shape[0] * shape[1] * shape[2]
        return torch.from_numpy(np.array(self._spill_map[offset:offset + count])).reshape(shape)

    def close(self) -> None:
        """Drop the spill file (the in-memory tensors go with the object)."""
        self._spill_map = None
        if self._spill_path is not None:
            try:
                os.remove(self._spill_path)
            except OSError:
                pass
            self._spill_path = None

    def __del__(self) -> None:
        self.close()


class CachedImageDataset(Dataset):
    """(transform(uint8 image), label) pairs served from :class:`DecodedImages`."""

    def __init__(self, images: DecodedImages, labels: Sequence[int], transform: ImageTransform,
                 indices: Sequence[int] | None = None) -> None:
        self.images = images
        self.labels = list(labels)
        self.transform = transform
        self.indices = list(range(len(images))) if indices is None else list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, int]:
        index = self.indices[item]
        return self.transform(self.images[index]), self.labels[index]

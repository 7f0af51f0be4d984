"""Feature and boundary caches of a distributed run, computed in shards by all ranks.

Each rank computes one block of an entry: a contiguous range of the images when the frozen part's
input is fixed (no augmentation, or pooling cached activations), or whole views when the views are
random augmentations, so each view is drawn from the very random stream a single process uses and
the assembled entry equals the single-process one. The blocks are exchanged with one all-gather and
assembled on every rank; rank 0 stores the whole entry, so later runs (one process or many) find it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from tl_desktop.engine.caching.decoded_images import DecodedImages
from tl_desktop.engine.caching.features import (
    FeatureBlock,
    FeatureRequest,
    FeatureSet,
    ImageTransform,
    Progress,
    compute_features,
    entry_meta,
    pool_from_activations,
)
from tl_desktop.engine.caching.store import CacheStore
from tl_desktop.engine.runtime.stop import StopToken
from tl_desktop.engine.training.distributed import Ranks


class RankShards:
    """The :class:`~tl_desktop.engine.caching.features.FeatureShards` of one rank."""

    def __init__(self, ranks: Ranks) -> None:
        self.ranks = ranks
        self._blocks: list[FeatureBlock] = []

    def all_found(self, found: bool) -> bool:
        """Whether every rank found the entry (otherwise all of them compute it together)."""
        return self.ranks.all(found)

    def blocks(self, count: int, views: int, random_views: bool) -> list[FeatureBlock]:
        """Every rank's block, in rank order."""
        ranks = self.ranks
        if random_views:
            parts = [ranks.bounds(views, rank) for rank in range(ranks.world_size)]
            return [FeatureBlock(range(count), tuple(range(*part))) for part in parts]
        everything = tuple(range(views))
        return [FeatureBlock(range(*ranks.bounds(count, rank)), everything) for rank in range(ranks.world_size)]

    def block(self, count: int, views: int, random_views: bool) -> FeatureBlock:
        """This rank's block of ``count`` images x ``views`` views."""
        self._blocks = self.blocks(count, views, random_views)
        return self._blocks[self.ranks.rank]

    def assemble(self, part: np.ndarray, block: FeatureBlock, shape: tuple[int, ...]) -> np.ndarray:
        """The whole entry from every rank's part (this rank's ``part`` is its ``block``)."""
        if not self._blocks or self._blocks[self.ranks.rank] != block:
            raise RuntimeError("a feature block was assembled that was not planned for this rank")
        whole = np.empty(shape, dtype=part.dtype)
        payloads = self.ranks.all_gather_bytes(np.ascontiguousarray(part).tobytes())
        for planned, payload in zip(self._blocks, payloads):
            if not planned.views or not len(planned.rows):
                continue
            values = np.frombuffer(payload, dtype=part.dtype).reshape(len(planned.rows), len(planned.views),
                                                                       *shape[2:])
            whole[planned.rows.start:planned.rows.stop, list(planned.views)] = values
        return whole

    def compute(self, model: nn.Module, images: DecodedImages, labels: Sequence[int], transform: ImageTransform,
                request: FeatureRequest, batch_size: int, device: torch.device, store: CacheStore,
                progress: Progress | None, stop: StopToken | None, pool_from: FeatureSet | None,
                shape: tuple[int, ...], dtype: type, keys: dict[str, str]) -> FeatureSet:
        """This rank's block of the entry (on torch, or pooled from ``pool_from``), assembled with the
        other ranks' blocks; rank 0 stores the whole entry, so later runs find it."""
        count = len(images)
        if pool_from is not None:
            block = self.block(count, request.views, random_views=False)
            part = np.empty((len(block.rows), request.views, *shape[2:]), dtype=dtype)
            pool_from_activations(model, pool_from, part, batch_size, device, progress, stop, rows=block.rows)
            engine = pool_from.engine
        else:
            block = self.block(count, request.views, random_views=request.augmentation != "none")
            part = np.empty((len(block.rows), len(block.views), *shape[2:]), dtype=dtype)
            compute_features(model, images, transform, request, part, batch_size, device, progress, stop, block=block)
            engine = "torch"
        values = self.assemble(part, block, shape)
        key = keys[engine]
        if self.ranks.is_main:
            with store.writing("features", key, entry_meta(model, request, shape, dtype, engine)) as folder:
                np.save(folder / "values.npy", values)
        return FeatureSet(values, labels, request, key, from_cache=False, engine=engine)

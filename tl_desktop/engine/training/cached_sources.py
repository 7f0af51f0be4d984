"""The speed caches behind the trainer's batch-source seam.

For each phase the frozen part of the network runs once: the head phase trains on cached pooled
features, a phase training the last N blocks on cached activations at the freeze boundary, and
validation reuses cached features of the same boundary. Training images come from the
decoded-image cache. Batches are ordered by a DataLoader over indices that shares the trainer's
seeded generator, so with augmentation off the cached path sees the same batches as the plain one.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from tl_desktop.engine.caching.decoded_images import (
    DEFAULT_MEMORY_BUDGET_BYTES,
    CachedImageDataset,
    DecodedImages,
)
from tl_desktop.engine.caching.features import (
    FeatureRequest,
    FeatureSet,
    activation_bytes,
    cached_features,
)
from tl_desktop.engine.caching.store import CacheStore
from tl_desktop.engine.data.dataset import Sample
from tl_desktop.engine.data.images import ImageLoadError
from tl_desktop.engine.data.preprocess import eval_transform, train_transform
from tl_desktop.engine.training.batch_sources import (
    BatchSource,
    SourceContext,
    context_loader,
    drop_last_for,
)
from tl_desktop.engine.training.distributed import Ranks
from tl_desktop.engine.training.events import CacheProgress, CacheStage, Message
from tl_desktop.engine.training.recipe import Phase, plan_phases
from tl_desktop.engine.training.sharded_features import RankShards


class _Indices(Dataset):
    def __init__(self, count: int) -> None:
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> int:
        return index


class FeatureBatches:
    """Re-iterable (inputs, labels) batches from a :class:`FeatureSet`; each pass is the next epoch."""

    def __init__(self, features: FeatureSet, batch_size: int, shuffle: bool, drop_last: bool,
                 generator: torch.Generator | None, ranks: Ranks = Ranks()) -> None:
        self.features = features
        self.order = DataLoader(_Indices(len(features)), batch_size=batch_size, shuffle=shuffle,
                                drop_last=drop_last, generator=generator, num_workers=0)
        self.ranks = ranks  # under torchrun each rank takes its share of every global batch
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        return self.features.batches((self.ranks.share(batch.tolist()) for batch in self.order), epoch)


class CachedSources:
    """Builds the cached batch sources for a trainer's phases; decodes images only on a cache miss."""

    def __init__(self, context: SourceContext, store: CacheStore | None = None,
                 memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET_BYTES) -> None:
        self.context = context
        self.store = store or CacheStore()
        self.memory_budget_bytes = memory_budget_bytes
        self._images: dict[str, DecodedImages] = {}
        self._features: dict[tuple[str, str, int], FeatureSet] = {}

    # ----- pieces ---------------------------------------------------------------------------------
    def _samples(self, source: str) -> list[Sample]:
        split = self.context.split
        if source == "pool":
            return list(self.context.feature_pool)
        return list(split.train if source == "train" else split.val)

    def _progress(self, stage: CacheStage, split_name: str) -> Callable[[int, int], None]:
        return lambda done, total: self.context.emit(CacheProgress(stage, done, total, split_name))

    def images(self, source: str, rows: range | None = None) -> DecodedImages:
        """The decoded images of ``source`` ("train", "val" or "pool"), decoding them on first use; with
        ``rows``, only those (a rank's shard of a distributed run)."""
        samples, key = self._samples(source), source
        if rows is not None and len(rows) < len(samples):
            samples, key = samples[rows.start:rows.stop], f"{source}[{rows.start}:{rows.stop}]"
        if key not in self._images:
            split = self.context.split
            total = max(len(split.train) + len(split.val), len(self.context.feature_pool))
            budget = self.memory_budget_bytes * len(samples) // max(1, total)
            images = DecodedImages([s.path for s in samples], self.context.preprocessing,
                                   memory_budget_bytes=budget, store=self.store,
                                   progress=self._progress("decoding", source), stop=self.context.stop)
            if images.failures:
                images.close()
                path, reason = images.failures[0]
                # The scan decoded every file, so a failure now means the file changed since then.
                raise ImageLoadError(path, f"{reason} (it changed after the data were scanned; scan again)")
            self._images[key] = images
        return self._images[key]

    def _pool_rows(self, split_name: str) -> list[int] | None:
        """Where the images of ``split_name`` sit in the feature pool; None when some are not in it."""
        if not self.context.feature_pool:
            return None
        row_of = {s.path: i for i, s in enumerate(self.context.feature_pool)}
        rows = [row_of.get(s.path) for s in self._samples(split_name)]
        return None if any(r is None for r in rows) else rows

    def features(self, split_name: str, boundary: int, pooled: bool) -> FeatureSet:
        """Cached frozen-part outputs for ``split_name`` at ``boundary`` (pooled for the head); taken
        from the feature pool's outputs when every image of the split is in the pool."""
        rows = self._pool_rows(split_name)
        if rows is None:
            return self._computed(split_name, split_name, boundary, pooled)
        return self._computed("pool", split_name, boundary, pooled).subset(rows)

    def _computed(self, source: str, role: str, boundary: int, pooled: bool) -> FeatureSet:
        """The frozen part's outputs for the images of ``source``, made as ``role`` ("train": augmented
        views, else one plain view) needs them."""
        cache_id = (source, role, -1 if pooled else boundary)
        if cache_id not in self._features:
            cfg = self.context.config.train
            pre = self.context.preprocessing
            augment = role == "train" and cfg.augmentation != "none"
            request = FeatureRequest(boundary=boundary, pooled=pooled, views=cfg.cached_views if augment else 1,
                                     augmentation=cfg.augmentation if augment else "none", seed=cfg.seed)
            transform = train_transform(pre, cfg.augmentation) if augment else eval_transform(pre)
            samples = self._samples(source)
            # Head first, then the last blocks: the frozen part runs once, for the boundary activations,
            # and the head's pooled features come from them through the remaining blocks.
            later = self._later_boundary()
            activations = (self._computed(source, role, later, False)
                           if pooled and later is not None and self.should_cache_boundary(source, later) else None)
            ranks = self.context.ranks
            shards = RankShards(ranks) if ranks.distributed else None
            rows = shards.block(len(samples), request.views, augment).rows if shards is not None else None
            self._features[cache_id] = cached_features(
                self.context.model, _LazyImages(self, source, [s.path for s in samples], rows),
                [s.label for s in samples], transform, request, pre, cfg.batch_size, self.context.device,
                store=self.store, progress=self._progress("features" if pooled else "activations", role),
                stop=self.context.stop, activations=activations, shards=shards,
            )
        return self._features[cache_id]

    def _later_boundary(self) -> int | None:
        """The freeze boundary of the phase after the head phase, when it keeps some blocks frozen."""
        cfg = self.context.config
        for phase in plan_phases(cfg.train, cfg.model.trainable_blocks):
            boundary = self.boundary(phase)
            if 0 < boundary < len(self.context.model.blocks):
                return boundary
        return None

    # ----- the seam -------------------------------------------------------------------------------
    def boundary(self, phase: Phase) -> int:
        """The first trainable block of ``phase`` (0 when everything trains)."""
        count = len(self.context.model.blocks)
        trainable = phase.trainable_blocks
        return 0 if trainable == "all" else max(0, count - int(trainable))

    def should_cache_boundary(self, split_name: str, boundary: int) -> bool:
        """Cache activations only when the frozen part exists and they fit the disk and the cache limit."""
        if boundary == 0:
            return False
        cfg = self.context.config.train
        views = cfg.cached_views if cfg.augmentation != "none" else 1
        in_pool = split_name != "pool" and self._pool_rows(split_name) is not None
        count = len(self._samples("pool" if in_pool else split_name))
        needed = activation_bytes(self.context.model, boundary, self.context.preprocessing.input_size, count * views)
        self.store.root.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.store.root).free
        return needed <= min(self.store.limit_bytes, free // 2)

    def train_source(self, phase: Phase) -> BatchSource:
        """Training batches for ``phase`` from the caches."""
        self.val_source(phase)  # build validation's cache now, so all cache progress comes before the phase
        boundary = self.boundary(phase)
        count = len(self._samples("train"))
        batch = self.context.config.train.batch_size
        drop_last = drop_last_for(count, batch)
        if boundary == len(self.context.model.blocks) or self.should_cache_boundary("train", boundary):
            pooled = boundary == len(self.context.model.blocks)
            feats = self.features("train", boundary, pooled)
            batches = FeatureBatches(feats, batch, True, drop_last, self.context.generator, self.context.ranks)
            return BatchSource(batches, len(batches), start_block=boundary, pooled=pooled)
        if boundary > 0:
            self.context.emit(Message("info", "activations at the freeze boundary are too large to cache; "
                                              "the frozen blocks run every epoch"))
        return self._image_source("train", shuffle=True, drop_last=drop_last)

    def val_source(self, phase: Phase) -> BatchSource:
        """Validation batches for ``phase``: cached features where the frozen part allows it."""
        boundary = self.boundary(phase)
        batch = self.context.config.train.batch_size
        if boundary == len(self.context.model.blocks) or self.should_cache_boundary("val", boundary):
            pooled = boundary == len(self.context.model.blocks)
            feats = self.features("val", boundary, pooled)
            batches = FeatureBatches(feats, batch, False, False, self.context.generator, self.context.ranks)
            return BatchSource(batches, len(batches), start_block=boundary, pooled=pooled)
        return self._image_source("val", shuffle=False, drop_last=False)

    def _image_source(self, split_name: str, shuffle: bool, drop_last: bool) -> BatchSource:
        pre = self.context.preprocessing
        augmentation = self.context.config.train.augmentation
        transform = train_transform(pre, augmentation) if split_name == "train" else eval_transform(pre)
        samples = self._samples(split_name)
        dataset = CachedImageDataset(self.images(split_name), [s.label for s in samples], transform)
        return context_loader(self.context, dataset, shuffle, drop_last)

    def close(self) -> None:
        """Release decoded images (and their spill files) and feature memory maps."""
        for images in self._images.values():
            images.close()
        self._images.clear()
        self._features.clear()


class _LazyImages:
    """Looks like :class:`DecodedImages` for the feature cache but decodes only if features are computed."""

    def __init__(self, owner: CachedSources, split_name: str, paths: Sequence[str], rows: range | None = None) -> None:
        self.owner = owner
        self.split_name = split_name
        self.paths = list(paths)
        self.rows = rows  # a rank's shard: only these images are decoded, and only they are asked for

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        if self.rows is None:
            return self.owner.images(self.split_name)[index]
        return self.owner.images(self.split_name, self.rows)[index - self.rows.start]


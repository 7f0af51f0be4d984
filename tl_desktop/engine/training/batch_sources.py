"""Where a phase's batches come from: one small protocol, a plain and a cached implementation.

The trainer asks its sources for a phase's training and validation batches and closes them at the
end; it never knows whether images are decoded every epoch (:class:`PlainSources`) or cached
activations replace the frozen part of the network (:class:`~tl_desktop.engine.training.cached_sources.CachedSources`).
Both are built from a :class:`SourceContext`, the few facts of a run they need.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    SequentialSampler,
    Subset,
)

from tl_desktop.config import RunConfig
from tl_desktop.engine.data.dataset import DatasetSplit, ImageDataset, Sample
from tl_desktop.engine.data.preprocess import (
    Preprocessing,
    decode_size,
    dicom_reading,
    eval_transform,
    train_transform,
)
from tl_desktop.engine.runtime.device import default_num_workers
from tl_desktop.engine.runtime.stop import StopToken
from tl_desktop.engine.training.distributed import Ranks
from tl_desktop.engine.training.events import Event
from tl_desktop.engine.training.recipe import Phase, seed_worker


@runtime_checkable
class EpochCounted(Protocol):
    """Batches that change with the epoch (cached augmented views cycle by it)."""

    epoch: int


@dataclass
class BatchSource:
    """A re-iterable of (inputs, labels) batches and what the inputs are.

    ``start_block`` = k: inputs are the output of block k-1 (0 = preprocessed images);
    ``pooled``: inputs are pooled features, so only the head runs.
    """

    batches: Iterable[tuple[torch.Tensor, torch.Tensor]]
    steps: int
    start_block: int = 0
    pooled: bool = False

    def skip_epochs(self, count: int) -> None:
        """Go on as if ``count`` epochs had been drawn already (a resumed run)."""
        if isinstance(self.batches, EpochCounted):
            self.batches.epoch = count


@dataclass(frozen=True)
class SourceContext:
    """What batch sources need from a run: its settings, data, network, device, randomness and voice."""

    config: RunConfig
    split: DatasetSplit
    preprocessing: Preprocessing
    model: torch.nn.Module
    device: torch.device
    generator: torch.Generator | None
    stop: StopToken
    emit: Callable[[Event], None]
    # Images whose frozen-part outputs are computed together and shared by runs on parts of them
    # (the folds of a cross-validation): a split inside the pool takes its rows of the pool's features.
    feature_pool: tuple[Sample, ...] = ()
    ranks: Ranks = Ranks()  # under torchrun: each rank takes its share of every global batch


class BatchSources(Protocol):
    """Training and validation batches for each phase of a run."""

    def train_source(self, phase: Phase) -> BatchSource: ...

    def val_source(self, phase: Phase) -> BatchSource: ...

    def close(self) -> None: ...


def drop_last_for(count: int, batch_size: int) -> bool:
    """Drop a last batch of one image (BatchNorm cannot train on it)."""
    return count % batch_size == 1 and count > batch_size


class RankBatches:
    """This rank's share of each global batch of ``batches`` (a last global batch with fewer images than
    ranks is left out, so every rank has images in every step)."""

    def __init__(self, batches: BatchSampler, ranks: Ranks) -> None:
        self.batches = batches
        self.ranks = ranks

    def __len__(self) -> int:
        count, size = len(self.batches.sampler), self.batches.batch_size
        last = count % size if count % size and not self.batches.drop_last else size
        return len(self.batches) - (1 if last < self.ranks.world_size else 0)

    def __iter__(self):
        for batch in self.batches:
            if len(batch) >= self.ranks.world_size:
                yield self.ranks.share(batch)


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, drop_last: bool, device: torch.device,
                num_workers: int | None, generator: torch.Generator | None, ranks: Ranks = Ranks()) -> DataLoader:
    """A DataLoader sized for the machine: workers + intra-op threads never exceed the cores. Under
    torchrun it loads this rank's share of each global batch (the same order on every rank)."""
    workers = default_num_workers(device, num_workers)
    if device.type == "cpu" and workers > 0:
        # Each worker decodes on a core of its own; the training step gets the cores that are left.
        torch.set_num_threads(max(1, min(torch.get_num_threads(), (os.cpu_count() or 1) - workers)))
    common = {"num_workers": workers, "generator": generator, "worker_init_fn": seed_worker,
              "pin_memory": device.type == "cuda", "persistent_workers": workers > 0}
    if ranks.distributed:
        sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        return DataLoader(dataset, batch_sampler=RankBatches(BatchSampler(sampler, batch_size, drop_last), ranks),
                          **common)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, **common)


def context_loader(context: SourceContext, dataset: Dataset, shuffle: bool, drop_last: bool) -> BatchSource:
    """Image batches of ``dataset`` through a loader with the run's batch size, workers and generator.
    Under torchrun training takes each rank's share of every batch, and evaluation (no shuffling) each
    rank's contiguous part of the images, so every image counts once."""
    cfg = context.config.train
    ranks = context.ranks
    if ranks.distributed and not shuffle:
        dataset, ranks = Subset(dataset, range(*ranks.bounds(len(dataset)))), Ranks()
    loader = make_loader(dataset, cfg.batch_size, shuffle, drop_last, context.device, cfg.num_workers,
                         context.generator, ranks)
    return BatchSource(loader, len(loader), start_block=0)


class PlainSources:
    """Every batch decoded from its image file, every epoch (augmented for training)."""

    def __init__(self, context: SourceContext) -> None:
        self.context = context

    def train_source(self, phase: Phase) -> BatchSource:
        """Augmented training images, decoded each epoch."""
        ctx = self.context
        samples = ctx.split.train
        pre = ctx.preprocessing
        dataset = ImageDataset(samples, train_transform(pre, ctx.config.train.augmentation), decode_size(pre),
                               dicom_reading(pre))
        return context_loader(ctx, dataset, True, drop_last_for(len(samples), ctx.config.train.batch_size))

    def val_source(self, phase: Phase) -> BatchSource:
        """Validation images through the one evaluation transform."""
        pre = self.context.preprocessing
        dataset = ImageDataset(self.context.split.val, eval_transform(pre), decode_size(pre), dicom_reading(pre))
        return context_loader(self.context, dataset, False, False)

    def close(self) -> None:
        """Nothing to release: loaders end with their iteration."""

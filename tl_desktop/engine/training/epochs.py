"""One training epoch and one validation pass: the flat inner loops of :class:`~tl_desktop.engine.training.trainer.Trainer`.

With one process the loops are the plain ones. Under torchrun (:mod:`tl_desktop.engine.training.distributed`)
each rank runs its share of every global batch through DistributedDataParallel; before the backward pass
one all-reduce sums every rank's stop flag and the batch's loss terms, so the loss is normalised by the
whole global batch (the same steps as one process) and every rank stops at the same step. Validation
sums are reduced over the ranks, so the metrics equal the single-process ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tl_desktop.engine.runtime.device import to_model_input
from tl_desktop.engine.runtime.stop import StopRequested, StopToken
from tl_desktop.engine.training.batch_sources import BatchSource
from tl_desktop.engine.training.distributed import Ranks
from tl_desktop.engine.training.events import BatchEnded, EpochStarted, Event


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite: the weights can no longer be trusted."""


class ModelPart(nn.Module):
    """The part of the model that a source's inputs have not been through yet, as one ``forward``
    (what DistributedDataParallel wraps)."""

    def __init__(self, model: nn.Module, source: BatchSource) -> None:
        super().__init__()
        self.model = model
        self.start_block = source.start_block
        self.pooled = source.pooled

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.pooled:
            return self.model.head(inputs)
        return self.model.forward_from(inputs, self.start_block)


@dataclass
class EpochLoop:
    """What the inner loops need from a run: network, loss, device, stop token, voice and ranks."""

    model: nn.Module
    criterion: nn.CrossEntropyLoss
    device: torch.device
    stop: StopToken
    emit: Callable[[Event], None]
    total_epochs: int
    ranks: Ranks

    def move_batch(self, inputs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Move one batch to the training device in the model's memory format (pinned on CUDA)."""
        return to_model_input(inputs, self.model, self.device), labels.to(self.device, non_blocking=True)

    def logits(self, inputs: torch.Tensor, forward: nn.Module) -> torch.Tensor:
        """Run ``forward`` (a :class:`ModelPart`, maybe data-parallel) with bf16 AMP on CUDA."""
        amp = self.device.type == "cuda" and torch.cuda.is_bf16_supported()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            return forward(inputs).float()

    def train_forward(self, source: BatchSource) -> nn.Module:
        """The forward the training steps of ``source`` use (data-parallel under torchrun)."""
        return self.ranks.data_parallel(ModelPart(self.model, source), self.device)

    def train_epoch(self, epoch: int, source: BatchSource, forward: nn.Module, optimizer,
                    scheduler) -> tuple[float, float, float]:
        """One pass over the training batches; returns mean loss, accuracy and the last step's lr."""
        self.model.train()
        self.emit(EpochStarted(epoch, self.total_epochs, source.steps))
        loss_sum, correct, seen, lr = 0.0, 0, 0, optimizer.param_groups[0]["lr"]
        for step, (inputs, labels) in enumerate(source.batches, start=1):
            if not self.ranks.distributed:  # under torchrun the step's all-reduce carries the stop flag
                self.stop.raise_if_requested()
            lr = optimizer.param_groups[0]["lr"]
            inputs, labels = self.move_batch(inputs, labels)
            logits = self.logits(inputs, forward)
            if self.ranks.distributed:
                loss, batch_loss, batch_correct, batch_size = self._shared_loss(logits, labels)
            else:
                loss = self.criterion(logits, labels)
                batch_loss = float(loss.detach())
                batch_correct, batch_size = int((logits.detach().argmax(1) == labels).sum()), len(labels)
            if not torch.isfinite(torch.tensor(batch_loss)):
                raise TrainingDiverged(f"the loss diverged at epoch {epoch} (it became {batch_loss}); lower the "
                                       "learning rate and train again: the best model so far is kept")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += batch_loss * batch_size
            correct += batch_correct
            seen += batch_size
            self.emit(BatchEnded(epoch, step, source.steps, batch_loss, batch_correct / max(1, batch_size)))
        self.stop.raise_if_requested()
        return loss_sum / max(1, seen), correct / max(1, seen), lr

    def _shared_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, float, int, int]:
        """This rank's part of the global batch's loss, and the whole batch's loss, correct count and size.

        The criterion's mean is sum(w_i * loss_i) / sum(w_i) over the global batch; DDP averages the
        ranks' gradients, so each rank's part is scaled by the number of ranks."""
        per_image = F.cross_entropy(logits, labels, weight=self.criterion.weight, reduction="none",
                                    label_smoothing=self.criterion.label_smoothing)
        weight = self.criterion.weight
        denominator = weight[labels].sum() if weight is not None else torch.tensor(float(len(labels)))
        stop, total, total_weight, correct, size = self.ranks.sum([
            self.stop.requested, float(per_image.detach().sum()), float(denominator),
            int((logits.detach().argmax(1) == labels).sum()), len(labels),
        ])
        if stop:
            raise StopRequested()
        loss = per_image.sum() * (self.ranks.world_size / max(total_weight, 1e-12))
        return loss, total / max(total_weight, 1e-12), int(correct), int(size)

    def validate(self, source: BatchSource) -> tuple[float, float]:
        """Plain (unweighted, unsmoothed) cross-entropy and accuracy on the validation images (each rank
        takes its share; the sums are reduced over the ranks)."""
        self.model.eval()
        part = ModelPart(self.model, source)
        loss_sum, correct, seen = 0.0, 0, 0
        with torch.inference_mode():
            for inputs, labels in source.batches:
                if not self.ranks.distributed:
                    self.stop.raise_if_requested()
                inputs, labels = self.move_batch(inputs, labels)
                logits = self.logits(inputs, part)
                loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
                correct += int((logits.argmax(1) == labels).sum())
                seen += len(labels)
        if self.ranks.distributed:
            stop, loss_sum, correct, seen = self.ranks.sum([self.stop.requested, loss_sum, correct, seen])
            if stop:
                raise StopRequested()
        return loss_sum / max(1, seen), correct / max(1, seen)

"""How many blocks to train, and for how long: a suggestion from the linear probe and the dataset's size.

Rules of thumb from the transfer-learning literature, in one sentence each for the user:
- When a linear probe on the frozen features already reaches ≥ 97% on validation, the pretrained features
  separate the classes; fine-tuning adds little (Kornblith et al., "Do Better ImageNet Models Transfer
  Better?", CVPR 2019, find fine-tuning's gain over the probe smallest on such everyday-photo datasets).
- When it reaches less than 90%, the images differ from everyday photos, and training the last blocks is
  where fine-tuning helps most (Yosinski et al., NeurIPS 2014: the last layers are the most task-specific).
- Few images per class limit how much can be trained without memorising them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

HIGH_PROBE = 0.97  # the probe's validation accuracy above which training only the head is suggested
LOW_PROBE = 0.90  # ... below which the last several blocks are
FEW_PER_CLASS = 30  # training images per class below which at most a couple of blocks train
DEEP_BLOCKS = 4
SHALLOW_BLOCKS = 2


@dataclass(frozen=True)
class DepthSuggestion:
    """A suggested number of trainable blocks and epochs, and why, in one sentence."""

    trainable_blocks: int
    epochs: int
    reason: str


def suggested_epochs(per_class: float) -> int:
    """More passes over a small dataset, fewer over a large one."""
    return 15 if per_class < FEW_PER_CLASS else 10 if per_class < 200 else 6


def suggest_depth(probe_accuracy: float, train_images: int, num_classes: int, num_blocks: int) -> DepthSuggestion:
    """The suggestion for a probe of ``probe_accuracy`` (validation, 0–1) on ``train_images`` images."""
    per_class = train_images / max(1, num_classes)
    epochs = suggested_epochs(per_class)
    probe = f"a linear probe on the frozen features reaches {probe_accuracy:.0%} on validation"
    if math.isnan(probe_accuracy):
        return DepthSuggestion(min(SHALLOW_BLOCKS, num_blocks), epochs, "without validation images the probe "
                               "cannot be judged; training the last 2 blocks is a safe middle")
    if probe_accuracy >= HIGH_PROBE:
        return DepthSuggestion(0, epochs, f"the pretrained features already separate your classes ({probe}): "
                               "training only the head is fast and fine-tuning would add little")
    few = per_class < FEW_PER_CLASS
    if probe_accuracy < LOW_PROBE and not few:
        blocks = min(DEEP_BLOCKS, num_blocks)
        return DepthSuggestion(blocks, epochs, f"your images differ from everyday photos ({probe}): training the "
                               f"last {blocks} blocks usually helps here")
    blocks = min(SHALLOW_BLOCKS, num_blocks)
    if few:
        return DepthSuggestion(blocks, epochs, f"{probe}, and with {per_class:.0f} training images per class, "
                               f"training more than the last {blocks} blocks risks memorising them")
    return DepthSuggestion(blocks, epochs, f"{probe}: training the last {blocks} blocks usually adds a little")

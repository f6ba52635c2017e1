"""The networks: shapes, parameter names, per-image normalisation, and the spec round trip."""

from __future__ import annotations

import pytest
import torch

from torch.nn import functional as F

from fomaml_utils.algorithms.models import MLP, ConvBlock, ConvNet, build_model, model_from_spec, model_spec


def test_mlp_keeps_its_parameter_names_and_flattens_images():
    model = MLP(784, (256, 128), 5)
    assert [k for k, _ in model.named_parameters()] == [
        "layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias", "layers.2.weight", "layers.2.bias"]
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 5)


def test_convnet_maps_28x28_images_to_logits_through_four_halvings():
    model = ConvNet(ways=5)
    assert model(torch.randn(4, 1, 28, 28)).shape == (4, 5)
    assert model(torch.randn(4, 784)).shape == (4, 5)  # flattened images are reshaped
    assert model.head.in_features == 32  # 28 → 14 → 7 → 3 → 1, times 32 channels


def test_convnet_prediction_for_an_image_does_not_depend_on_the_rest_of_the_batch():
    torch.manual_seed(0)
    model = ConvNet(ways=5, channels=8)
    model.train()  # no train/eval difference either: there are no batch statistics
    images = torch.randn(6, 1, 28, 28)
    alone = torch.cat([model(images[i:i + 1]) for i in range(6)])
    torch.testing.assert_close(model(images), alone)
    model.eval()
    torch.testing.assert_close(model(images), alone)
    assert not list(model.buffers())  # no running statistics to leak between tasks


@pytest.mark.parametrize(("arch", "parameters"), [
    ("mlp", 784 * 256 + 256 + 256 * 5 + 5),
    ("mlp2", 784 * 256 + 256 + 256 * 128 + 128 + 128 * 5 + 5),
    ("cnn", (9 * 32 + 32 + 64) + 3 * (9 * 32 * 32 + 32 + 64) + 32 * 5 + 5),
])
def test_build_model_gives_the_documented_architectures(arch, parameters):
    model = build_model(arch, ways=5)
    assert sum(p.numel() for p in model.parameters()) == parameters
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 5)


@pytest.mark.parametrize("arch", ["mlp", "mlp2", "cnn"])
def test_model_spec_round_trips_the_architecture_and_names_the_preset(arch):
    model = build_model(arch, ways=3)
    spec = model_spec(model)
    assert spec["arch"] == arch
    rebuilt = model_from_spec(spec)
    assert type(rebuilt) is type(model) and model_spec(rebuilt) == spec
    assert {k: p.shape for k, p in rebuilt.state_dict().items()} == {k: p.shape for k, p in model.state_dict().items()}


def test_model_spec_of_a_custom_architecture_has_no_preset_name():
    assert model_spec(MLP(10, (3,), 2))["arch"] is None
    assert model_spec(ConvNet(5, channels=8))["arch"] is None


def test_model_spec_does_not_consume_random_numbers():
    model = build_model("cnn", 5)
    torch.manual_seed(1)
    model_spec(model)
    after = torch.rand(1)
    torch.manual_seed(1)
    assert torch.equal(after, torch.rand(1))


def test_bad_model_arguments_raise_value_error_naming_them():
    with pytest.raises(ValueError, match="arch"):
        build_model("resnet", 5)
    with pytest.raises(ValueError, match="ways"):
        build_model("mlp", 1)
    with pytest.raises(ValueError, match="blocks"):
        ConvNet(5, blocks=5)
    with pytest.raises(ValueError, match="channels"):
        ConvNet(5, channels=0)
    with pytest.raises(ValueError, match="spec"):
        model_from_spec({"class": "Transformer"})
    with pytest.raises(ValueError, match="model"):
        model_spec(torch.nn.Linear(2, 2))


def test_conv_block_pools_before_its_relu_with_the_same_values_and_gradients():
    """relu(maxpool(x)) = maxpool(relu(x)) bit for bit, ties included (MNIST's black borders make many)."""
    torch.manual_seed(0)
    block = ConvBlock(1, 4).double()
    x = torch.randn(3, 1, 14, 14, dtype=torch.float64)
    x[:, :, :5] = 0.0  # constant regions: equal values in a pooling window
    x.requires_grad_()
    out = block(x)
    reference = F.max_pool2d(F.relu(block.norm(block.conv(x))), 2)
    assert torch.equal(out, reference)
    g = torch.randn_like(out)
    assert torch.equal(torch.autograd.grad(out, x, g)[0], torch.autograd.grad(reference, x, g)[0])

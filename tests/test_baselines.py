"""The pretrained-with-fresh-head baseline: pretraining on the meta-training classes, head replacement."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from fomaml_utils.algorithms.maml import adapt
from fomaml_utils.algorithms.models import build_model
from fomaml_utils.data.tasks import SPLITS, FewShotSampler
from fomaml_utils.seeding import seed_everything
from fomaml_utils.training.baselines import head_name, pretrain, with_fresh_head


@pytest.fixture(scope="module")
def pretrained() -> torch.nn.Module:
    return pretrain("unseen-digits", arch="mlp", iterations=40, images_per_class=2, seed=0)


def test_pretrained_network_has_one_output_per_meta_training_class(pretrained):
    assert pretrained(torch.zeros(1, 1, 28, 28)).shape == (1, len(SPLITS["unseen-digits"].train_classes)) == (1, 28)


def test_pretraining_learns_the_meta_training_classes_well_above_chance(pretrained):
    sampler = FewShotSampler("unseen-digits", "train", 28, 5, 1, seed=99)
    batch, class_idx = sampler.sample(1, return_classes=True)
    truth = class_idx[0][batch.support_y[0]]
    with torch.no_grad():
        accuracy = (pretrained(batch.support_x[0]).argmax(dim=-1) == truth).float().mean().item()
    assert accuracy > 0.3, f"28-way accuracy {accuracy:.2f} after 40 steps; chance is 0.036"


def test_pretraining_is_reproducible_from_its_seed():
    a, b, c = (pretrain("unseen-digits", arch="mlp", iterations=5, images_per_class=2, seed=s) for s in (0, 0, 1))
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.layers[0].weight, c.layers[0].weight)


@pytest.mark.parametrize("kwargs, name", [
    (dict(split="omniglot"), "split"),
    (dict(iterations=0), "iterations"),
    (dict(images_per_class=1.5), "images_per_class"),
    (dict(lr=-1.0), "lr"),
    (dict(arch="resnet"), "arch"),
])
def test_pretrain_rejects_bad_arguments_naming_them(kwargs, name):
    args = dict(split="unseen-digits", iterations=1) | kwargs
    with pytest.raises(ValueError, match=name):
        pretrain(args.pop("split"), **args)


@pytest.mark.parametrize("arch", ["mlp", "mlp2", "cnn"])
def test_fresh_head_has_ways_outputs_and_keeps_every_other_weight(arch):
    seed_everything(0)
    body = build_model(arch, 28)
    fresh = with_fresh_head(body, 5)
    old, new = body.state_dict(), fresh.state_dict()
    head = head_name(body)
    assert fresh(torch.zeros(2, 1, 28, 28)).shape == (2, 5)
    assert set(old) == set(new)
    for k in old:
        if k.startswith(head + "."):
            assert new[k].shape[0] == 5 and not new[k].any(), "zero head"
        else:
            assert torch.equal(old[k], new[k])
    assert body(torch.zeros(1, 1, 28, 28)).shape == (1, 28), "the pretrained model is untouched"


def test_random_head_is_drawn_from_its_own_seed_without_touching_the_global_rng():
    body = build_model("mlp", 28)
    state = torch.random.get_rng_state()
    a = with_fresh_head(body, 5, head="random", seed=1)
    b = with_fresh_head(body, 5, head="random", seed=1)
    c = with_fresh_head(body, 5, head="random", seed=2)
    assert torch.equal(state, torch.random.get_rng_state())
    assert torch.equal(a.layers[-1].weight, b.layers[-1].weight)
    assert not torch.equal(a.layers[-1].weight, c.layers[-1].weight)
    assert a.layers[-1].weight.abs().max() <= 1 / 256**0.5


def test_zero_head_first_step_is_a_class_mean_classifier_on_the_features(pretrained):
    """From a zero head, one SGD step of size α sets row c of the head to α/n Σ_i (1[y_i = c] − 1/N) h(x_i)."""
    model = with_fresh_head(pretrained, 5)
    batch = FewShotSampler("unseen-digits", "test", 5, 2, 1, seed=0).sample(1)
    x, y = batch.support_x[0], batch.support_y[0]
    params = {k: p.detach() for k, p in model.named_parameters()}
    adapted = adapt(model, params, x, y, inner_lr=0.3, inner_steps=1)
    with torch.no_grad():
        h = torch.relu(functional_call(model.layers[0], {"weight": params["layers.0.weight"],
                                                         "bias": params["layers.0.bias"]}, (x.flatten(1),)))
        target = torch.nn.functional.one_hot(y, 5).float() - 1 / 5        # [n, N]
        expected = 0.3 / len(y) * target.T @ h                           # [N, hidden]
    torch.testing.assert_close(adapted["layers.1.weight"], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("ways, head", [(1, "zeros"), (5, "xavier")])
def test_fresh_head_rejects_bad_arguments(ways, head):
    with pytest.raises(ValueError, match="ways" if ways < 2 else "head"):
        with_fresh_head(build_model("mlp", 28), ways, head=head)

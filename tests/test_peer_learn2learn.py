"""learn2learn as a benchmark peer: loaded only from its hash-checked source archive, and computing our gradients."""

from __future__ import annotations

import pytest
import torch

from fomaml_utils.algorithms.maml import meta_gradient
from fomaml_utils.algorithms.models import ConvNet, MLP
from fomaml_utils.data.taskbatch import TaskBatch
from fomaml_utils.tools import peer_learn2learn as peer


def _batch(shape, dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    labels = lambda n: torch.arange(5).repeat_interleave(n).repeat(3, 1)
    return TaskBatch(torch.randn(3, 5, *shape, generator=g, dtype=dtype), labels(1),
                     torch.randn(3, 10, *shape, generator=g, dtype=dtype), labels(2))


@pytest.fixture
def learn2learn():
    try:
        return peer.load_learn2learn()
    except FileNotFoundError as error:
        pytest.skip(str(error))


@pytest.mark.parametrize("algorithm", ["fomaml", "maml"])
@pytest.mark.parametrize("make, shape", [(lambda: MLP(12, (8,), 5), (12,)),
                                         (lambda: ConvNet(5, channels=4, blocks=2, image_size=8), (1, 8, 8))])
def test_learn2learn_computes_our_meta_gradient(learn2learn, algorithm, make, shape):
    torch.manual_seed(0)
    model = make().double()
    params = dict(model.named_parameters())
    batch = _batch(shape)
    args = dict(algorithm=algorithm, inner_lr=0.3, inner_steps=3)
    got = peer.learn2learn_meta_gradient(model, params, batch, **args)
    want = meta_gradient(model, params, batch, implementation="loop", **args)
    for name in want.grads:
        torch.testing.assert_close(got.grads[name], want.grads[name], rtol=1e-10, atol=1e-12)
    assert torch.allclose(got.query_loss, want.query_loss)
    assert all(p.grad is None for p in params.values())


def test_reptile_is_refused(learn2learn):
    model = MLP(12, (8,), 5)
    with pytest.raises(ValueError, match="not 'reptile'"):
        peer.learn2learn_meta_gradient(model, dict(model.named_parameters()), _batch((12,), torch.float32),
                                       algorithm="reptile", inner_lr=0.3, inner_steps=1)


def test_an_archive_with_another_hash_is_never_run(tmp_path, monkeypatch):
    fake = tmp_path / peer.SDIST_NAME
    fake.write_bytes(b"not learn2learn")
    monkeypatch.setattr(peer, "_maml_class", None)
    monkeypatch.setitem(__import__("sys").modules, "learn2learn", None)  # as if not installed
    with pytest.raises(ValueError, match="SHA-256"):
        peer.load_learn2learn(fake)
    with pytest.raises(FileNotFoundError, match="peer_learn2learn"):
        peer.load_learn2learn(tmp_path / "missing.tar.gz")

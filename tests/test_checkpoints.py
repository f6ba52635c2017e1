"""Checkpoints: weights, architecture and metadata round-trip; a mismatching architecture is refused."""

from __future__ import annotations

import pytest
import torch

from fomaml_utils.algorithms.models import MLP, ConvNet, build_model
from fomaml_utils.training.checkpoints import load_checkpoint, save_checkpoint
from fomaml_utils.training.evaluation import Evaluation
from fomaml_utils.training.loop import History


@pytest.mark.parametrize("arch", ["mlp", "mlp2", "cnn"])
def test_checkpoint_round_trips_weights_architecture_and_predictions(tmp_path, arch):
    torch.manual_seed(0)
    model = build_model(arch, ways=5)
    path = save_checkpoint(tmp_path / "sub" / "model.pt", model, algorithm="fomaml")
    loaded, metadata = load_checkpoint(path, expected_arch=arch)
    assert type(loaded) is type(model)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())
    images = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(loaded(images), model(images), rtol=0, atol=0)
    assert metadata == {"algorithm": "fomaml"}


def test_checkpoint_keeps_metadata_and_history_as_plain_data(tmp_path):
    history = History(iteration=[1, 2], query_loss=[1.5, 1.2], query_accuracy=[0.3, 0.4], seconds=[0.1, 0.2])
    evaluation = Evaluation(steps=[0, 1], mean=[0.2, 0.5], ci95=[0.01, 0.02], metric="accuracy", num_tasks=10)
    save_checkpoint(tmp_path / "m.pt", MLP(784, (256,), 5), split="unseen-digits",
                    hyperparameters={"inner_lr": 0.4, "inner_steps": (5, 10)}, history=history,
                    evaluation=evaluation, note=None)
    _, metadata = load_checkpoint(tmp_path / "m.pt")
    assert metadata["split"] == "unseen-digits"
    assert metadata["hyperparameters"] == {"inner_lr": 0.4, "inner_steps": [5, 10]}
    assert History.from_dict(metadata["history"]) == history
    assert metadata["evaluation"] == evaluation.to_dict() and metadata["note"] is None


def test_loading_refuses_a_mismatching_architecture_and_says_which_it_holds(tmp_path):
    save_checkpoint(tmp_path / "m.pt", build_model("mlp", 5))
    with pytest.raises(ValueError, match=r"holds architecture 'mlp'.*expected_arch is 'cnn'"):
        load_checkpoint(tmp_path / "m.pt", expected_arch="cnn")
    save_checkpoint(tmp_path / "c.pt", ConvNet(5, channels=8))
    with pytest.raises(ValueError, match="custom ConvNet"):
        load_checkpoint(tmp_path / "c.pt", expected_arch="cnn")


def test_unsaveable_metadata_and_unreadable_files_raise_value_errors(tmp_path):
    with pytest.raises(ValueError, match="sampler"):
        save_checkpoint(tmp_path / "m.pt", build_model("mlp", 5), sampler=object())
    assert not list(tmp_path.iterdir())  # nothing half-written
    with pytest.raises(ValueError, match="path"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="path"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="save_checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_checkpoint_files_load_with_weights_only(tmp_path):
    save_checkpoint(tmp_path / "m.pt", build_model("mlp", 5), history=History(iteration=[1]))
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    assert set(payload) == {"format", "spec", "state_dict", "metadata", "digest"}


def test_a_flipped_byte_in_a_weight_is_refused_as_damaged(tmp_path):
    model = build_model("mlp", 5)
    save_checkpoint(tmp_path / "m.pt", model)
    raw = bytearray((tmp_path / "m.pt").read_bytes())
    weight = model.state_dict()["layers.0.weight"].contiguous().numpy().tobytes()
    start = raw.find(weight[:64])
    assert start > 0  # torch.save stores tensor data uncompressed
    raw[start + 1000] ^= 0x40
    (tmp_path / "m.pt").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="m.pt.*damaged.*digest"):
        load_checkpoint(tmp_path / "m.pt")


def test_an_empty_file_and_a_directory_each_get_their_own_reason(tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.pt.* is empty \\(0 bytes\\)"):
        load_checkpoint(tmp_path / "empty.pt")
    (tmp_path / "folder.pt").mkdir()
    with pytest.raises(ValueError, match="folder.pt.* is a directory"):
        load_checkpoint(tmp_path / "folder.pt")


def test_weights_that_do_not_fit_the_architecture_are_a_value_error(tmp_path):
    from fomaml_utils.algorithms.models import model_spec
    from fomaml_utils.training.checkpoints import tensors_digest

    spec = model_spec(build_model("mlp", 5))
    state_dict = build_model("mlp", 3).state_dict()
    torch.save({"format": 2, "spec": spec, "state_dict": state_dict, "metadata": {},
                "digest": tensors_digest(spec, state_dict)}, tmp_path / "m.pt")
    with pytest.raises(ValueError, match="do not fit its architecture"):
        load_checkpoint(tmp_path / "m.pt")
    torch.save({"format": 2, "spec": {"arch": "nonsense"}, "state_dict": state_dict, "metadata": {},
                "digest": tensors_digest({"arch": "nonsense"}, state_dict)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="bad.pt"):
        load_checkpoint(tmp_path / "bad.pt")


def test_a_format_1_checkpoint_without_digest_still_loads_with_a_warning(tmp_path):
    from fomaml_utils.algorithms.models import model_spec

    model = build_model("mlp", 5)
    torch.save({"format": 1, "spec": model_spec(model), "state_dict": model.state_dict(), "metadata": {"a": 1}},
               tmp_path / "old.pt")
    with pytest.warns(UserWarning, match="no digest"):
        loaded, metadata = load_checkpoint(tmp_path / "old.pt")
    assert metadata == {"a": 1}
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))


def test_a_checkpoint_gets_the_permissions_of_an_ordinary_new_file(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "m.pt", build_model("mlp", 5))
    finally:
        os.umask(umask)
    assert (tmp_path / "m.pt").stat().st_mode & 0o777 == 0o644


def test_a_meta_state_round_trips_and_is_covered_by_the_digest(tmp_path):
    model = build_model("mlp", 5)
    step_sizes = {k: torch.full_like(p, 0.1) + 0.01 * torch.arange(p.numel()).reshape(p.shape).sin()
                  for k, p in model.named_parameters()}
    save_checkpoint(tmp_path / "m.pt", model, meta_state=step_sizes, algorithm="metasgd")
    _, metadata = load_checkpoint(tmp_path / "m.pt")
    assert sorted(metadata["meta_state"]) == sorted(step_sizes) and metadata["algorithm"] == "metasgd"
    assert all(torch.equal(metadata["meta_state"][k], v) for k, v in step_sizes.items())
    raw = bytearray((tmp_path / "m.pt").read_bytes())
    start = raw.find(step_sizes["layers.0.weight"].numpy().tobytes()[:64])
    assert start > 0
    raw[start + 1000] ^= 0x40
    (tmp_path / "m.pt").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="damaged"):
        load_checkpoint(tmp_path / "m.pt")


def test_a_checkpoint_without_meta_state_has_none_in_its_metadata(tmp_path):
    save_checkpoint(tmp_path / "m.pt", build_model("mlp", 5), meta_state={})
    assert "meta_state" not in load_checkpoint(tmp_path / "m.pt")[1]

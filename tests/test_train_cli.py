"""The command line ``python -m fomaml_utils.tools.train``: help, usage errors, a tiny run, divergence."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fomaml_utils.tools.train import build_parser, main, make_samplers, run_name
from fomaml_utils.training.checkpoints import load_checkpoint

TINY = ["--iterations", "4", "--meta-batch-size", "4", "--inner-steps", "1", "--val-every", "2",
        "--val-tasks", "10", "--eval-tasks", "20", "--eval-inner-steps", "2", "--no-progress"]


def test_help_explains_every_flag_and_shows_defaults():
    result = subprocess.run([sys.executable, "-m", "fomaml_utils.tools.train", "--help"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    flags = [s for a in build_parser()._actions for s in a.option_strings if s.startswith("--")]
    missing = [f for f in flags if f not in result.stdout]
    assert not missing, f"--help does not mention {missing}"
    assert "(default: 5)" in result.stdout and "(default: fomaml)" in result.stdout
    assert all(a.help for a in build_parser()._actions), "every flag has a help text"


def test_unknown_flag_is_a_usage_error_with_exit_status_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--no-such-flag"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --no-such-flag" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--ways", "1"], "--ways"),
    (["--shots", "0"], "--shots"),
    (["--inner-lr", "-0.1"], "--inner-lr"),
    (["--meta-lr", "nan"], "--meta-lr"),
    (["--iterations", "ten"], "--iterations"),
    (["--algorithm", "sgd"], "--algorithm"),
    (["--split", "omniglot"], "--split"),
    (["--ways", "13"], "ways=13"),  # the unseen-digits meta-test part has only 12 classes
    (["--queries", "100000"], "queries"),
    (["--norm", "task"], "--norm is a setting of the ConvNet"),  # --arch is mlp
    (["--arch", "cnn", "--norm", "batch"], "--norm"),
])
def test_bad_values_are_usage_errors_naming_the_flag(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--out", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err and message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_tiny_run_writes_a_checkpoint_that_loads_and_a_json_with_the_accuracy(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TINY, "--out", str(out), "--shots", "2", "--train-shots", "3", "--seed", "3"]) == 0
    model, metadata = load_checkpoint(out / "checkpoint.pt", expected_arch="mlp")
    assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 5)
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["test_accuracy"] <= 1 and metrics["test_ci95"] > 0
    assert metrics["evaluation"]["steps"] == [0, 1, 2] and metrics["evaluation"]["num_tasks"] == 20
    assert metrics["config"]["shots"] == 2 and metrics["config"]["train_shots"] == 3 and metrics["config"]["seed"] == 3
    assert metrics["history"]["iteration"] == [1, 2, 3, 4] and metrics["history"]["val_iteration"] == [0, 2, 4]
    assert metrics["peak_memory_bytes"] > 0 and metrics["train_seconds"] > 0
    assert metadata["test_accuracy"] == metrics["test_accuracy"]
    assert f"{100 * metrics['test_accuracy']:.1f} %" in capsys.readouterr().out


def test_zero_head_run_records_the_setting_and_saves_a_zero_output_layer(tmp_path):
    out = tmp_path / "run"
    assert main([*TINY, "--out", str(out), "--zero-head", "--meta-lr-schedule", "cosine"]) == 0
    model, metadata = load_checkpoint(out / "checkpoint.pt", expected_arch="mlp")
    assert metadata["config"]["zero_head"] is True and metadata["config"]["meta_lr_schedule"] == "cosine"
    assert torch.count_nonzero(model.layers[-1].weight) == 0 and torch.count_nonzero(model.layers[-1].bias) == 0
    assert torch.count_nonzero(model.layers[0].weight) > 0


@pytest.mark.parametrize("algorithm", ["fo-anil", "metasgd"])
def test_anil_and_meta_sgd_runs_write_what_they_learned(algorithm, tmp_path):
    out = tmp_path / "run"
    assert main([*TINY, "--out", str(out), "--algorithm", algorithm, "--zero-head"]) == 0
    model, metadata = load_checkpoint(out / "checkpoint.pt", expected_arch="mlp")
    assert metadata["config"]["algorithm"] == algorithm
    if algorithm == "metasgd":  # the learned step sizes, one per weight, moved from --inner-lr
        state = metadata["meta_state"]
        assert sorted(state) == sorted(k for k, _ in model.named_parameters())
        assert all(state[k].shape == p.shape for k, p in model.named_parameters())
        assert any(not torch.equal(s, torch.full_like(s, 0.1)) for s in state.values())
    else:
        assert "meta_state" not in metadata


def test_a_convnet_run_records_its_normalisation_and_the_checkpoint_rebuilds_it(tmp_path):
    out = tmp_path / "run"
    assert main([*TINY, "--out", str(out), "--arch", "cnn", "--norm", "support", "--meta-batch-size", "2",
                 "--queries", "2", "--eval-tasks", "4", "--val-tasks", "4"]) == 0
    model, metadata = load_checkpoint(out / "checkpoint.pt", expected_arch="cnn")
    assert metadata["config"]["norm"] == "support" and model.norm == "support"


def test_lowrank_with_an_algorithm_it_cannot_serve_is_a_usage_error(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main([*TINY, "--out", str(tmp_path / "run"), "--algorithm", "metasgd", "--implementation", "lowrank"])
    assert exit_info.value.code == 2
    assert "implementation 'lowrank' serves" in capsys.readouterr().err


def test_same_seed_gives_the_same_checkpoint(tmp_path):
    for name in ("a", "b"):
        assert main([*TINY, "--out", str(tmp_path / name)]) == 0
    (a, _), (b, _) = (load_checkpoint(tmp_path / name / "checkpoint.pt") for name in ("a", "b"))
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("argv", [
    ["--inner-lr", "10", "--meta-lr", "1"],  # blows up to ~1e13, then dead ReLUs at chance level
    ["--inner-lr", "1e30"],                  # NaN at the first step
])
def test_diverging_run_exits_1_with_one_line_and_writes_nothing(argv, tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TINY, *argv, "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "diverged" in err and "Traceback" not in err
    assert "inner_lr=" in err and "meta_lr=" in err  # the usual cause, named
    assert not out.exists()


def test_train_shots_changes_only_the_meta_training_tasks():
    samplers = make_samplers("unseen-digits", ways=5, shots=1, queries=2, train_shots=10)
    assert {part: s.shots for part, s in samplers.items()} == {"train": 10, "val": 1, "test": 1}
    assert [s.seed for s in samplers.values()] == [0, 1, 2]


def test_bad_out_fails_before_training(tmp_path, capsys):
    (tmp_path / "a-file").write_text("x")
    for out, message in ((tmp_path / "a-file", "is not a folder"), (tmp_path / "a-file" / "run", "cannot write"),
                         (Path("/proc/run"), "cannot write")):
        with pytest.raises(SystemExit) as exit_info:
            main([*TINY, "--out", str(out)])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and "meta-test accuracy" not in err


def test_a_run_is_not_overwritten_without_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TINY, "--out", str(out)]) == 0
    first = (out / "metrics.json").read_text()
    with pytest.raises(SystemExit) as exit_info:
        main([*TINY, "--inner-lr", "0.2", "--out", str(out)])
    assert exit_info.value.code == 2 and "--overwrite" in capsys.readouterr().err
    assert (out / "metrics.json").read_text() == first
    assert main([*TINY, "--inner-lr", "0.2", "--out", str(out), "--overwrite"]) == 0
    assert json.loads((out / "metrics.json").read_text())["config"]["inner_lr"] == 0.2


def test_runs_with_other_hyperparameters_get_other_default_folders():
    parser = build_parser()
    names = {run_name(parser.parse_args(argv)) for argv in ([], ["--inner-lr", "0.2"], ["--iterations", "7"],
                                                            ["--threads", "1"], ["--arch", "cnn"],
                                                            ["--arch", "cnn", "--norm", "task"])}
    assert len(names) == 5  # --threads does not change what is computed, so it shares a folder


def test_too_many_ways_names_the_part_that_is_short(capsys, tmp_path):
    """unseen-digits has 28 meta-training classes but 12 meta-test ones: --ways 100 must say 12."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--ways", "100", "--out", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "ways=100 but split 'unseen-digits' part 'test' has only 12 classes" in err and "28" not in err


def test_sampler_seeds_wrap_around_at_torchs_limit():
    samplers = make_samplers("digits", ways=5, shots=1, queries=2, seed=2**64 - 1)
    assert [s.seed for s in samplers.values()] == [2**64 - 1, 0, 1]


@pytest.fixture
def no_fetching(monkeypatch):
    """Fails the test if MNIST would be fetched from anywhere."""
    from fomaml_utils.data import mnist

    def fetch(*args, **kwargs):
        raise AssertionError("must not fetch MNIST")
    monkeypatch.setattr(mnist, "_fetch_wheel_with_pip", fetch)
    monkeypatch.setattr(mnist, "_download_from_web", fetch)


def test_data_root_without_mnist_is_a_usage_error_saying_how_to_build_it(tmp_path, capsys, no_fetching):
    (tmp_path / "empty").mkdir()
    for root, reason in ((tmp_path / "dtaa", "does not exist"), (tmp_path / "empty", "holds no MNIST")):
        with pytest.raises(SystemExit) as exit_info:
            main([*TINY, "--data-root", str(root), "--out", str(tmp_path / "run")])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert reason in err and f"python -m fomaml_utils.data.mnist --root {root}" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]  # no folder made, nothing fetched
    assert list((tmp_path / "empty").iterdir()) == []


def test_damaged_data_root_gives_one_line_without_traceback(tmp_path, capsys, no_fetching):
    from fomaml_utils.data.mnist import IDX_FILES

    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in IDX_FILES:
        (raw / name).write_bytes(b"\x00\x00\x08")  # cut short: not an IDX file
    assert main([*TINY, "--data-root", str(tmp_path / "data"), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("python -m fomaml_utils.tools.train: error: ") and err.count("\n") == 1
    assert "too short for an IDX file" in err and "python -m fomaml_utils.data.mnist --root" in err
    assert "Traceback" not in err and not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def single_task_run(tmp_path_factory) -> Path:
    """A tiny run meta-tested on one task, whose 95 % half-width is undefined (NaN)."""
    out = tmp_path_factory.mktemp("single-task") / "run"
    assert main([*TINY, "--eval-tasks", "1", "--out", str(out)]) == 0
    return out


def test_metrics_json_is_strict_json(single_task_run):
    def refuse(constant):
        raise ValueError(f"bare {constant} in metrics.json")
    metrics = json.loads((single_task_run / "metrics.json").read_text(), parse_constant=refuse)
    assert metrics["test_ci95"] is None and metrics["evaluation"]["num_tasks"] == 1
    assert 0 <= metrics["test_accuracy"] <= 1


def test_checkpoint_and_metrics_get_the_same_permissions(single_task_run):
    import os

    umask = os.umask(0)
    os.umask(umask)
    modes = {name: (single_task_run / name).stat().st_mode & 0o777 for name in ("checkpoint.pt", "metrics.json")}
    assert modes == {"checkpoint.pt": 0o666 & ~umask, "metrics.json": 0o666 & ~umask}

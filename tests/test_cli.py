"""The argparse number checkers of ``fomaml_utils.tools.cli``, and that both command lines use them."""

from __future__ import annotations

import argparse

import pytest
import torch

from fomaml_utils.tools import bench, train
from fomaml_utils.tools.cli import finite_or_none, non_negative_int, positive_float, positive_int, seed


@pytest.mark.parametrize("check, text, expected", [
    (positive_int, "1", 1),
    (positive_int, "32", 32),
    (non_negative_int, "0", 0),
    (non_negative_int, "7", 7),
    (positive_float, "1e-3", 1e-3),
    (positive_float, "0.5", 0.5),
])
def test_values_in_range_are_returned_as_numbers(check, text, expected):
    value = check(text)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("check, text", [
    (positive_int, "0"), (positive_int, "-3"),
    (non_negative_int, "-1"),
    (positive_float, "0"), (positive_float, "-0.1"), (positive_float, "nan"), (positive_float, "inf"),
])
def test_values_out_of_range_are_argument_type_errors(check, text):
    with pytest.raises(argparse.ArgumentTypeError, match=text):
        check(text)


@pytest.mark.parametrize("check, text", [
    (positive_int, "ten"), (positive_int, "1.5"), (non_negative_int, ""), (positive_float, "fast"),
])
def test_text_that_is_not_a_number_is_a_value_error(check, text):
    with pytest.raises(ValueError):  # argparse reports it as "invalid <type name> value"
        check(text)


@pytest.mark.parametrize("parser, argv, message", [
    (train.build_parser(), ["--shots", "0"], "argument --shots: must be an integer >= 1, got 0"),
    (train.build_parser(), ["--seed", "x"], "argument --seed: invalid non-negative integer value: 'x'"),
    (train.build_parser(), ["--meta-lr", "nan"], "argument --meta-lr: must be a finite number > 0, got nan"),
    (bench.build_parser(), ["--repeats", "0"], "argument --repeats: must be an integer >= 1, got 0"),
    (bench.build_parser(), ["--threads", "two"], "argument --threads: invalid positive integer value: 'two'"),
])
def test_both_command_lines_report_bad_numbers_naming_the_flag(parser, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_check_writable_folder_creates_the_folder_and_names_the_flag_when_it_cannot(tmp_path):
    from fomaml_utils.tools.cli import check_writable_folder

    check_writable_folder(tmp_path / "a" / "b", "--out")
    assert (tmp_path / "a" / "b").is_dir() and not list((tmp_path / "a" / "b").iterdir())
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="cannot write to --out .*file/run'.*file' is a file, not a folder"):
        check_writable_folder(tmp_path / "file" / "run", "--out")


def test_write_text_atomically_leaves_the_whole_text_and_no_temporary_file(tmp_path):
    from fomaml_utils.tools.cli import write_text_atomically

    (tmp_path / "m.json").write_text("old")
    write_text_atomically(tmp_path / "m.json", "new")
    assert (tmp_path / "m.json").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_seed_outside_torchs_range_is_a_usage_error_giving_the_range(capsys):
    assert seed("0") == 0 and seed(str(2**64 - 1)) == 2**64 - 1
    for parser in (train.build_parser(), bench.build_parser()):
        for text in (str(2**64), "-1"):
            with pytest.raises(SystemExit) as exit_info:
                parser.parse_args(["--seed", text])
            assert exit_info.value.code == 2
            assert f"argument --seed: must be an integer from 0 to 2**64 - 1 = {2**64 - 1}, got {text}" in \
                capsys.readouterr().err


def test_bench_rejects_nan_inner_lr(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--inner-lr", "nan", "--data", "random"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --inner-lr: must be a finite number > 0, got nan" in err and "Traceback" not in err


def test_bench_rejects_zero_steps(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--steps", "1,0", "--data", "random"])
    assert exit_info.value.code == 2
    assert "argument --steps: inner steps must be integers >= 1, got '1,0'" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--inner-lr", "inf"], "argument --inner-lr: must be a finite number > 0"),
    (["--inner-lr", "-0.4"], "argument --inner-lr: must be a finite number > 0"),
    (["--inner-lr", "fast"], "argument --inner-lr: invalid positive number value: 'fast'"),
    (["--steps", "x"], "argument --steps: invalid list of inner steps value: 'x'"),
    (["--steps", "-1"], "argument --steps: inner steps must be integers >= 1"),
    (["--warmup", "-1"], "argument --warmup: must be an integer >= 0, got -1"),
    (["--repeats", "0"], "argument --repeats: must be an integer >= 1, got 0"),
    (["--meta-batch-size", "0"], "argument --meta-batch-size: must be an integer >= 1, got 0"),
    (["--threads", "0"], "argument --threads: must be an integer >= 1, got 0"),
    (["--models", "resnet"], "argument --models: choose from mlp"),
])
def test_every_numeric_bench_flag_is_checked_before_the_benchmark(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_finite_or_none_turns_every_non_finite_number_into_null_and_keeps_the_rest():
    value = {"a": float("nan"), "b": [1.5, float("inf"), {"c": -float("inf")}], "d": (2, "x", None, True)}
    assert finite_or_none(value) == {"a": None, "b": [1.5, None, {"c": None}], "d": [2, "x", None, True]}


def test_write_json_atomically_writes_strict_json(tmp_path):
    import json

    from fomaml_utils.tools.cli import write_json_atomically

    write_json_atomically(tmp_path / "r.json", {"ci95": float("nan"), "rate": 3.0})
    text = (tmp_path / "r.json").read_text()
    assert "NaN" not in text and json.loads(text) == {"ci95": None, "rate": 3.0}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_bench_runs_peers_only_for_algorithms_that_adapt_every_weight_with_plain_sgd():
    from fomaml_utils.data.taskbatch import TaskBatch
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(5).repeat(2, 1)
    batches = [TaskBatch(torch.rand(2, 5, 1, 28, 28, generator=g), labels, torch.rand(2, 5, 1, 28, 28, generator=g),
                         labels)]
    rows = bench.run_case("mlp", 1, ["fomaml", "anil", "metasgd"], ["auto", "tutorial"], batches, warmup=0,
                          repeats=1, inner_lr=0.1, seed=0, measure_memory=False)
    notes = {(r["algorithm"], r["implementation"]): r["note"] for r in rows}
    assert notes["anil", "auto"] == "ours, auto → lowrank"
    for name in ("anil", "metasgd"):
        assert notes[name, "tutorial"] == "peers are run for fomaml, maml, reptile"
    assert notes["fomaml", "tutorial"] == "" and all(r["tasks_per_second"] for r in rows if r["algorithm"] == "fomaml")

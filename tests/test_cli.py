"""The argparse number checkers of ``fomaml_utils.cli``, and that both command lines use them."""

from __future__ import annotations

import argparse

import pytest

from fomaml_utils import bench, train
from fomaml_utils.cli import non_negative_int, positive_float, positive_int


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
    from fomaml_utils.cli import check_writable_folder

    check_writable_folder(tmp_path / "a" / "b", "--out")
    assert (tmp_path / "a" / "b").is_dir() and not list((tmp_path / "a" / "b").iterdir())
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="cannot write to --out .*file/run"):
        check_writable_folder(tmp_path / "file" / "run", "--out")


def test_write_text_atomically_leaves_the_whole_text_and_no_temporary_file(tmp_path):
    from fomaml_utils.cli import write_text_atomically

    (tmp_path / "m.json").write_text("old")
    write_text_atomically(tmp_path / "m.json", "new")
    assert (tmp_path / "m.json").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]

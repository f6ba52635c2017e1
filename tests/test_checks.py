"""fomaml_utils.companions.checks: every failure is a CheckFailed whose message says what is wrong and where to look."""

from __future__ import annotations

import pytest
import torch

from fomaml_utils.companions.checks import CheckFailed, check, close, fail, running


def test_fail_names_what_and_where_as_sentences():
    with pytest.raises(CheckFailed, match=r"^the loss is NaN\. Look at Part 2\.$"):
        fail("the loss is NaN", "Part 2")
    with pytest.raises(CheckFailed, match=r"^wrong\. Look at Part 1: which weights\?$"):
        fail("wrong.", "Part 1: which weights?")


def test_a_check_failure_is_an_assertion_error_for_nbgrader():
    assert issubclass(CheckFailed, AssertionError)
    check(True, "never", "nowhere")
    with pytest.raises(AssertionError):
        check(False, "x", "y")


def test_close_gives_the_largest_difference_and_its_index():
    expected = torch.zeros(2, 3, dtype=torch.float64)
    actual = expected.clone()
    actual[1, 2] = 0.5
    with pytest.raises(CheckFailed, match=r"mine differs from ref: at index \(1, 2\) it is 0\.5, expected 0"):
        close(actual, expected, name="mine", expected_name="ref", where="Part 1", rtol=1e-10)
    close(actual + 1e-12, actual, name="mine", expected_name="ref", where="Part 1", rtol=1e-10, atol=1e-9)


def test_close_compares_dicts_by_name_and_refuses_wrong_shapes_and_nan():
    ref = {"w": torch.ones(2), "b": torch.zeros(1)}
    with pytest.raises(CheckFailed, match=r"missing \['b'\]"):
        close({"w": torch.ones(2)}, ref, name="grads", expected_name="ref", where="P", rtol=0)
    with pytest.raises(CheckFailed, match=r"grads\['w'\] has shape \(3,\)"):
        close({"w": torch.ones(3), "b": torch.zeros(1)}, ref, name="grads", expected_name="ref", where="P", rtol=0)
    with pytest.raises(CheckFailed, match="NaN"):
        close({"w": torch.tensor([1.0, float("nan")]), "b": torch.zeros(1)}, ref, name="grads", expected_name="ref",
              where="P", rtol=0)
    with pytest.raises(CheckFailed, match="should be a tensor or a dict of tensors, but it is a list"):
        close([1.0], ref["w"], name="grads", expected_name="ref", where="P", rtol=0)


def test_running_turns_a_stub_into_not_written_yet_even_when_wrapped():
    with pytest.raises(CheckFailed, match=r"^f is not written yet: .*in Part 1, f\.$"):
        with running("f", "Part 1, f: which weights does it use?"):
            raise NotImplementedError()
    with pytest.raises(CheckFailed, match="not written yet"):
        with running("f", "Part 1"):
            try:
                raise NotImplementedError()
            except NotImplementedError as error:
                raise RuntimeError("step_fn raised NotImplementedError") from error


def test_running_explains_a_missing_name_and_keeps_other_errors_as_the_cause():
    with pytest.raises(CheckFailed, match=r"could not run: name 'g' is not defined\. Run the cells above"):
        with running("f", "Part 1"):
            g  # noqa: F821, B018
    with pytest.raises(CheckFailed, match=r"f raised ValueError: bad\. The traceback above") as info:
        with running("f", "Part 1"):
            raise ValueError("bad")
    assert isinstance(info.value.__cause__, ValueError)

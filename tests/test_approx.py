"""approx prints a figure marked ≈, flags it when outside its tolerance, and nbval-sanitize.cfg masks exactly it."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from nbval.plugin import get_sanitize_patterns

from fomaml_utils.companions.approx import MARK, approx

PATTERNS = get_sanitize_patterns((Path(__file__).resolve().parent.parent / "nbval-sanitize.cfg").read_text())


def sanitize(text: str) -> str:
    """What nbval compares: the text after every replacement of the sanitizer file."""
    for regex, replace in PATTERNS:
        text = re.sub(regex, replace, text)
    return text


def test_the_sanitizer_file_has_one_pattern_and_it_is_found():
    assert len(PATTERNS) == 1


@pytest.mark.parametrize("kwargs, text", [
    (dict(value=0.4817, expected=0.48, tol=0.05), "≈0.482"),
    (dict(value=-0.0221, expected=0.0, tol=0.05, fmt="+.3f", ci=0.0191), "≈-0.022 ± 0.019"),
    (dict(value=0.053, expected=0.06, tol=0.05, fmt="+.3f"), "≈+0.053"),
    (dict(value=80.93, expected=81.0, tol=0.5, fmt=".1f", unit=" %", ci=0.61), "≈80.9 % ± 0.6"),
    (dict(value=9.87e-3, expected=9e-3, tol=2e-3, fmt=".1e"), "≈9.9e-03"),
])
def test_a_figure_inside_its_tolerance_is_marked_and_nothing_else(kwargs, text):
    assert approx(**kwargs) == text


@pytest.mark.parametrize("value", [0.4817, 0.4309, 0.5291, 12.5, -3.0])
def test_figures_inside_their_tolerance_compare_equal_after_sanitizing_whatever_their_width(value):
    stored = f"loss {approx(0.48, 0.48, 100):>10} | MSE {approx(0.48, 0.48, 100, ci=0.05)} after"
    fresh = f"loss {approx(value, 0.48, 100):>10} | MSE {approx(value, 0.48, 100, ci=0.051)} after"
    assert sanitize(stored) == sanitize(fresh) == "loss≈… | MSE≈… after"


@pytest.mark.parametrize("value", [0.6, 0.3, math.nan, math.inf])
def test_a_figure_outside_its_tolerance_shows_the_expected_range_and_fails_the_comparison(value):
    stored = f"MSE {approx(0.48, 0.48, 0.05)}"
    fresh = f"MSE {approx(value, 0.48, 0.05)}"
    assert fresh.startswith("MSE ") and MARK not in fresh and fresh.endswith(" (expected 0.480 ± 0.05)")
    assert sanitize(fresh) == fresh != sanitize(stored)  # nothing masked: the failing check shows the value


def test_the_boundary_of_the_tolerance_counts_as_inside():
    assert approx(0.75, 0.5, 0.25) == f"{MARK}0.750"  # all three exact in binary
    assert "expected" in approx(0.751, 0.5, 0.25)


def test_only_the_marked_figure_is_masked():
    text = f"3 classes, seed 7, accuracy {approx(80.9, 81, 1, fmt='.1f', unit=' %')} on 1,000 tasks (chance 20.0 %)"
    assert sanitize(text) == "3 classes, seed 7, accuracy≈… on 1,000 tasks (chance 20.0 %)"


def test_a_tensor_that_requires_grad_is_printed_without_a_warning(recwarn):
    value = (torch.tensor([0.25, 0.5], requires_grad=True) * 2).max()
    assert approx(value, 1.0, 0.01) == "≈1.000"
    assert not recwarn.list


@pytest.mark.parametrize("tol", [-0.1, math.nan, math.inf])
def test_a_tolerance_must_be_a_finite_non_negative_number(tol):
    with pytest.raises(ValueError, match="tol must be"):
        approx(0.5, 0.5, tol)

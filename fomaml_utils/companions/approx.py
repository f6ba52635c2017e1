r"""Figures that differ from machine to machine: printed with a mark, checked against a tolerance.

Two CPUs round the same float computation differently in the last bits, and meta-training amplifies
such differences: after a few hundred meta-steps the weights, and every figure computed from them, differ
in the second or third digit (scoring near-ties can also fall the other way). Rounding the printed figure
does not help. So a figure that comes from a training run, or from scoring many near-ties, is printed by
``approx``::

    print(f"MSE after 10 steps: {approx(mse, expected=0.48, tol=0.05)}")   # "MSE after 10 steps: ≈0.482"

The mark ``≈`` tells the reader that the last digits vary between machines. The series' tests mask exactly
the digits after a ``≈`` (``nbval-sanitize.cfg``) and compare everything else character for character. So
that the mask hides no real change, ``approx`` checks the value: outside ``expected ± tol`` (or not finite)
it prints the figure without the mark and the expected range beside it, ``0.620 (expected 0.480 ± 0.05)``,
which the tests do not mask, so the notebook check fails and shows both numbers. Each tolerance is stated
beside the call with the measured spread it comes from (``notebooks/build/tolerances.md``: numeric settings
that change float bits as another CPU would, and the machines the outputs were made on).
"""

from __future__ import annotations

import math

__all__ = ["approx", "MARK"]

MARK = "≈"
"""Printed before every figure whose digits vary between machines; ``nbval-sanitize.cfg`` masks what follows it."""


def approx(value: float, expected: float, tol: float, *, fmt: str = ".3f", unit: str = "",
           ci: float | None = None) -> str:
    """``value`` (a number or a one-element tensor) as text, marked ``≈``; outside ``expected ± tol`` unmarked and
    followed by the expected range.

    ``fmt``: format of the value (and of ``ci``), e.g. ``".3f"``, ``"+.3f"``, ``".1f"``. ``unit``: text
    right after the value, e.g. ``" %"``. ``ci``: a 95 % confidence half-width printed as ``± ci`` (it is
    part of the figure and masked with it; it is not checked). Returns e.g. ``"≈80.9 % ± 0.6"``.
    Raises ``ValueError`` for a negative or non-finite ``tol``.
    """
    if not math.isfinite(tol) or tol < 0:
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    value = float(value.detach() if hasattr(value, "detach") else value)  # a tensor that requires grad, too
    inside = math.isfinite(value) and abs(value - expected) <= tol
    text = f"{MARK if inside else ''}{value:{fmt}}{unit}"
    if ci is not None:
        text += f" ± {float(ci):{fmt.lstrip('+')}}"
    if not inside:
        text += f" (expected {expected:{fmt.lstrip('+')}} ± {tol:g}{unit})"
    return text

"""Helpers for the fomaml-notebooks tutorial series.

Each submodule has one job; notebooks import what they use, e.g.
``from fomaml_utils.tasks import FewShotSampler``.
"""

__version__ = "0.1.0"

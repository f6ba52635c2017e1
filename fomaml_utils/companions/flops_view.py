"""Notebook 05's slider figure: what the flop model predicts for the three forms of the inner loop.

``flops_figure`` draws, against the number of inner steps, the matrix-product flops of one FOMAML
meta-gradient (``fomaml_utils.companions.flops``), the numbers that hold the adapted weights, and the speed-up of the
low-rank form over the loop that the flop counts alone predict, with measured speed-ups marked. Computed,
not timed: it redraws at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from matplotlib.figure import Figure

from fomaml_utils.companions.flops import FORMS, adapted_weight_floats, dense_fomaml_flops, lowrank_fomaml_flops

__all__ = ["STEPS", "flops_figure"]

STEPS = tuple(range(1, 11))
"""The inner-step counts on the figure's horizontal axes."""
LABELS = {"loop": "per-task loop", "vmap": "vmap", "lowrank": "low-rank"}
STYLES = {"loop": dict(color="tab:blue", ls="-"), "vmap": dict(color="tab:orange", ls="--"),
          "lowrank": dict(color="tab:green", ls="-")}


def flops_figure(*, widths: Sequence[int], tasks: int, support: int, query: int,
                 measured: Mapping[int, float] | None = None, measured_label: str = "") -> Figure:
    """Three panels against inner steps 1–10 for the MLP ``widths`` and ``tasks`` tasks of ``support`` +
    ``query`` examples: GFLOP per meta-step of each form, megabytes (float32) holding the adapted weights,
    and the flop ratio loop / low-rank. ``measured``: inner steps → measured speed-up, drawn as points on
    the third panel with ``measured_label``. Raises ``ValueError`` for sizes ``fomaml_utils.companions.flops``
    refuses."""
    dense = [dense_fomaml_flops(widths, tasks, support, query, k) / 1e9 for k in STEPS]
    lowrank = [lowrank_fomaml_flops(widths, tasks, support, query, k) / 1e9 for k in STEPS]
    fig = Figure(figsize=(12.5, 3.6))
    flops_ax, memory_ax, ratio_ax = fig.subplots(1, 3)
    flops_ax.plot(STEPS, dense, label="per-task loop and vmap (same products)", **STYLES["loop"])
    flops_ax.plot(STEPS, lowrank, label=LABELS["lowrank"], **STYLES["lowrank"])
    flops_ax.set(title="Matrix-product work per meta-step", xlabel="inner steps k", ylabel="GFLOP", ylim=(0, None))
    for form in FORMS:
        megabytes = [4 * adapted_weight_floats(widths, tasks, support, k, form) / 2**20 for k in STEPS]
        memory_ax.plot(STEPS, megabytes, label=LABELS[form], **STYLES[form])
    memory_ax.set(title="Memory holding the adapted weights θ′", xlabel="inner steps k", ylabel="MB (float32)",
                  yscale="log")
    ratio_ax.plot(STEPS, [d / l for d, l in zip(dense, lowrank)], label="predicted by flops alone",
                  **STYLES["lowrank"])
    if measured:
        ratio_ax.plot(list(measured), list(measured.values()), "o", color="black",
                      label=f"measured{' ' + measured_label if measured_label else ''}")
    ratio_ax.axhline(1, color="0.6", lw=0.8)
    ratio_ax.set(title="Speed-up of low-rank over the loop", xlabel="inner steps k", ylabel="×", ylim=(0, None))
    for ax in (flops_ax, memory_ax, ratio_ax):
        ax.legend(fontsize=8)
        ax.set_xticks(STEPS)
    hidden = "-".join(str(w) for w in widths)
    fig.suptitle(f"MLP {hidden}, {tasks} tasks of {support} support and {query} query examples", fontsize=10)
    fig.tight_layout()
    return fig

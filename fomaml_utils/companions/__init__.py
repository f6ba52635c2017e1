"""Notebook companions: what one notebook or the assignments need beside the core (import each by module).

- ``approx``: figures that differ between machines, printed with a mark and checked against a tolerance.
- ``quadratic``: MAML on quadratic task losses, every quantity in closed form (notebook 01, assignment 1).
- ``sinusoid``: sinusoid regression, the MAML paper's toy problem (notebook 02, assignment 2).
- ``explore``: the slider and button callbacks of notebook 03.
- ``plots``: labelled image grids of few-shot tasks.
- ``sliders``: ``FigurePanel``, sliders that redraw a figure from any thread.
- ``bugs``: meta-training with classic bugs switched on (notebook 04's switchboard).
- ``diagnose``: checks that find the classic silent bugs of MAML code (notebook 04).
- ``checks``: the assignments' checks, each failure said in words.
- ``memory``: saved-tensor bytes and allocator peak of a computation.
- ``profiling``: where a meta-step's time goes, and matrix-product throughput (notebook 05).
- ``flops``: the flop model of one FOMAML meta-gradient, dense and low-rank (notebook 05).
- ``flops_view``: notebook 05's slider figure of that model.
"""

__all__: list[str] = []

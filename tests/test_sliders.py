"""FigurePanel: sliders that redraw figures without pyplot, from any thread, and a static stand-in."""

import threading
import time

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from ipywidgets import Checkbox, FloatSlider, IntSlider  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from fomaml_utils.algorithms.models import MLP  # noqa: E402
from fomaml_utils.companions import quadratic as quad  # noqa: E402
from fomaml_utils.companions import sinusoid  # noqa: E402
from fomaml_utils.companions.explore import MetaTrainingPlayground, plot_accuracy_curve  # noqa: E402
from fomaml_utils.companions.plots import plot_task  # noqa: E402
from fomaml_utils.companions.sliders import (CHECKBOX_NOTE, MANUAL_NOTE, STATIC_NOTE, FigurePanel,  # noqa: E402
                                              png_bytes)
from fomaml_utils.data.taskbatch import TaskBatch  # noqa: E402
from fomaml_utils.training.evaluation import Evaluation  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def line_figure(slope: float) -> Figure:
    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1], [0, slope])
    return fig


def test_panel_draws_the_starting_values_at_once():
    panel = FigurePanel(lambda slope: (f"slope {slope}", line_figure(slope)), {"slope": FloatSlider(1.0)})
    assert panel.redraws == 1
    assert panel.text.value == "slope 1.0"
    [image] = panel.images.children
    assert bytes(image.value).startswith(PNG)


def test_moving_a_slider_redraws_its_figure():
    slider = FloatSlider(1.0, min=-5, max=5)
    panel = FigurePanel(lambda slope: line_figure(slope), {"slope": slider})
    before = panel.images.children[0].value
    slider.value = -3.0
    assert panel.redraws == 2
    assert panel.images.children[0].value != before


def test_panel_shows_as_many_images_as_the_callback_returns():
    n = IntSlider(2, 1, 3)
    panel = FigurePanel(lambda n: [line_figure(k) for k in range(n)], {"n": n})
    assert len(panel.images.children) == 2
    n.value = 3
    assert len(panel.images.children) == 3


def test_a_callback_error_is_shown_not_raised():
    def draw(slope):
        if slope < 0:
            raise ValueError("slope must be non-negative; move the slider right")
        return line_figure(slope)

    slider = FloatSlider(1.0, min=-1, max=1)
    panel = FigurePanel(draw, {"slope": slider})
    slider.value = -1.0  # would raise inside a comm handler nobody reads
    assert panel.last_error == "slope must be non-negative; move the slider right"
    assert "move the slider right" in panel.text.value and "color" in panel.text.value
    assert panel.images.children == ()  # no stale figure beside the error
    slider.value = 0.5
    assert panel.last_error is None and len(panel.images.children) == 1


def test_a_callback_returning_no_figure_is_reported():
    panel = FigurePanel(lambda x: "not a figure", {"x": FloatSlider(1.0)})
    assert "TypeError" in panel.last_error and "Figure" in panel.last_error


def test_callbacks_never_touch_pyplot():
    plt.close("all")
    FigurePanel(lambda slope: line_figure(slope), {"slope": FloatSlider(1.0)})
    quad.plot_landscape(quad.example_tasks(), 0.2, 1)
    model = MLP(1, (8,), 1)
    inits = {"init": {k: p.detach() for k, p in model.named_parameters()}}
    sinusoid.plot_adaptation(model, inits, amplitude=1.0, phase=0.0, shots=5, steps=1, inner_lr=0.01)
    ev = Evaluation(steps=[0, 1], mean=[0.2, 0.5], ci95=[0.1, 0.1], metric="accuracy", num_tasks=3)
    plot_accuracy_curve({"x": ev}, title="t", ways=5)
    batch = TaskBatch(torch.rand(1, 2, 1, 28, 28), torch.tensor([[0, 1]]), torch.rand(1, 2, 1, 28, 28),
                      torch.tensor([[0, 1]]))
    plot_task(batch)
    assert plt.get_fignums() == []  # pyplot's global list of figures, shared by every thread, is untouched


def test_concurrent_moves_draw_one_at_a_time_and_end_on_the_last_values():
    active, most, seen = 0, 0, []
    guard = threading.Lock()

    def draw(x):
        nonlocal active, most
        with guard:
            active += 1
            most = max(most, active)
        time.sleep(0.02)
        seen.append(x)
        with guard:
            active -= 1
        return line_figure(x)

    slider = IntSlider(0, 0, 100)
    panel = FigurePanel(draw, {"x": slider})
    threads = [threading.Thread(target=lambda v=v: setattr(slider, "value", v)) for v in range(1, 21)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most == 1  # never two drawings at once
    assert seen[-1] == slider.value  # the last drawing shows where the slider stopped
    assert panel.redraws < 21  # moves that arrived during a drawing were folded into the next


def test_a_button_panel_draws_only_when_pressed():
    calls = []
    panel = FigurePanel(lambda a, on: calls.append((a, on)) or ("done", line_figure(a)),
                        {"a": FloatSlider(1.0), "on": Checkbox(True)}, button="Run")
    assert calls == [] and panel.images.children == ()
    panel.button.click()
    assert calls == [(1.0, True)] and panel.text.value == "done" and not panel.button.disabled


def test_stored_output_shows_figures_and_a_note_not_a_repr():
    panel = FigurePanel(lambda slope: line_figure(slope), {"slope": FloatSlider(1.0, description="k (inner_steps)")})
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle  # the live widget, once the cell has run
    assert bundle["text/plain"] == STATIC_NOTE
    assert "interactive(" not in str(bundle) and "FloatSlider(" not in str(bundle)
    assert STATIC_NOTE in bundle["text/html"] and bundle["text/html"].count("data:image/png;base64,") == 1
    assert bundle["image/png"]
    button_bundle = FigurePanel(lambda a: line_figure(a), {"a": FloatSlider(1.0)}, button="Run")._repr_mimebundle_()
    assert button_bundle["text/plain"] == MANUAL_NOTE and "image/png" not in button_bundle
    checkbox_bundle = FigurePanel(lambda a, b: line_figure(1.0), {"a": Checkbox(False), "b": Checkbox(True)},
                                  button="Run")._repr_mimebundle_()
    assert checkbox_bundle["text/plain"] == CHECKBOX_NOTE and CHECKBOX_NOTE in checkbox_bundle["text/html"]


def test_slider_labels_are_not_cut():
    slider = IntSlider(1, description="k (inner_steps)")
    FigurePanel(lambda k: line_figure(k), {"k": slider})
    assert slider.style.description_width == "initial"


def test_playground_refuses_a_meta_batch_of_zero():
    with pytest.raises(ValueError, match="meta_batch_size must be a positive integer"):
        MetaTrainingPlayground().run(inner_lr=0.1, meta_lr=1e-3, inner_steps=1, meta_batch_size=0)


def test_png_bytes_is_a_png():
    assert png_bytes(line_figure(1.0)).startswith(PNG)

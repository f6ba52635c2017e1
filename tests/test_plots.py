"""Task image grids: ``plot_task`` draws what it says, marks wrong predictions, and refuses bad input."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from fomaml_utils.companions.plots import WRONG_COLOR, plot_task  # noqa: E402
from fomaml_utils.data.tasks import FewShotSampler  # noqa: E402


def _sampler(ways=5, shots=2, queries=7):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (60, 28, 28), dtype=torch.uint8, generator=g)
    labels = torch.arange(6).repeat(10)
    classes = [(0, 0), (1, 90), (2, 180), (3, 270), (4, 0), (5, 0)]
    return FewShotSampler.from_tensors(images, labels, classes, ways, shots, queries, seed=0)


@pytest.fixture
def figures():
    """Collects the figures a test draws and closes them afterwards, whatever happens."""
    made: list[Figure] = []
    yield made
    for fig in made:
        plt.close(fig)
    assert not plt.get_fignums()


def _image_axes(fig: Figure):
    return [ax for ax in fig.axes if ax.images]


def _is_wrong(ax) -> bool:
    return mcolors.same_color(ax.title.get_color(), WRONG_COLOR)


def test_returns_a_figure_with_one_image_axes_per_support_and_shown_query_image(figures):
    batch = _sampler(ways=5, shots=2, queries=7).sample(2)
    figures.append(fig := plot_task(batch, index=1, max_queries_per_class=5))
    assert isinstance(fig, Figure)
    assert len(_image_axes(fig)) == 5 * 2 + 5 * 5
    assert fig._suptitle.get_text() == "Task 1: 5-way 2-shot"


def test_shows_every_query_when_there_are_fewer_than_the_maximum(figures):
    figures.append(fig := plot_task(_sampler(ways=3, shots=1, queries=2).sample(1)))
    assert len(_image_axes(fig)) == 3 * 1 + 3 * 2


def test_titles_name_the_label_and_the_class(figures):
    sampler = _sampler(ways=4, shots=1, queries=1)
    batch, class_idx = sampler.sample(1, return_classes=True)
    classes = sampler.task_classes(class_idx[0])
    figures.append(fig := plot_task(batch, classes=classes, title="A task"))
    titles = [ax.get_title() for ax in _image_axes(fig)]
    digit, rotation = classes[2]
    assert f"label 2\ndigit {digit}, {rotation}°" in titles
    assert fig._suptitle.get_text() == "A task"


def test_marks_exactly_the_wrong_predictions_in_red(figures):
    batch = _sampler(ways=5, shots=1, queries=3).sample(1)
    predictions = batch.query_y[0].clone()
    predictions[[0, 4]] = (predictions[[0, 4]] + 1) % 5  # two wrong: label 0 and label 1
    figures.append(fig := plot_task(batch, predictions=predictions))
    wrong = [ax for ax in _image_axes(fig) if _is_wrong(ax)]
    assert len(wrong) == 2
    assert sorted(ax.get_title() for ax in wrong) == ["label 0, predicted 1", "label 1, predicted 2"]
    assert all(mcolors.same_color(ax.spines["left"].get_edgecolor(), WRONG_COLOR) for ax in wrong)


def test_correct_predictions_are_not_marked(figures):
    batch = _sampler().sample(1)
    figures.append(fig := plot_task(batch, predictions=batch.query_y[0]))
    assert not any(_is_wrong(ax) for ax in _image_axes(fig))


def test_undoes_the_normalisation_for_display(figures):
    batch = _sampler().sample(1)
    figures.append(fig := plot_task(batch))
    pixels = torch.as_tensor(_image_axes(fig)[0].images[0].get_array())
    assert pixels.min() >= 0 and pixels.max() <= 1 and pixels.max() > 0.9


def test_refuses_predictions_of_the_wrong_length():
    batch = _sampler(ways=5, shots=1, queries=3).sample(1)
    with pytest.raises(ValueError, match=r"predictions must be 15 integer labels"):
        plot_task(batch, predictions=torch.zeros(14, dtype=torch.long))
    assert not plt.get_fignums()


def test_refuses_an_index_outside_the_batch():
    with pytest.raises(ValueError, match=r"index=2 but the batch has only 2 tasks"):
        plot_task(_sampler().sample(2), index=2)


def test_refuses_classes_of_the_wrong_length():
    with pytest.raises(ValueError, match=r"classes must give one \(digit, rotation\) per label, 5"):
        plot_task(_sampler().sample(1), classes=[(0, 0)])

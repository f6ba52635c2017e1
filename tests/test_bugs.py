"""fomaml_utils.companions.bugs: every switch changes the run, the correct loop trains, the figure avoids pyplot."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from fomaml_utils.algorithms.models import build_model  # noqa: E402
from fomaml_utils.companions import bugs as bugs_module  # noqa: E402
from fomaml_utils.companions.bugs import BUGS, BugRun, meta_train_with_bugs, plot_bug_runs  # noqa: E402
from fomaml_utils.seeding import seed_everything  # noqa: E402
from fomaml_utils.training.loop import History  # noqa: E402

TINY = dict(iterations=3, meta_batch_size=2, inner_steps=1, val_tasks=4, val_points=1)


def trained_weights(bugs, monkeypatch) -> tuple[BugRun, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Run with ``bugs`` and return the run, the initial and the final weights of its meta-model."""
    made = []
    real = bugs_module.build_model

    def spy(arch, ways):
        model = real(arch, ways)
        made.append((model, {k: p.detach().clone() for k, p in model.named_parameters()}))
        return model

    monkeypatch.setattr(bugs_module, "build_model", spy)
    run = meta_train_with_bugs(bugs, **TINY)
    (model, start), = made
    return run, start, {k: p.detach() for k, p in model.named_parameters()}


@pytest.fixture(scope="module")
def runs() -> dict[str, BugRun]:
    out = {"none": meta_train_with_bugs((), **TINY)}
    for bug in BUGS:
        out[bug] = meta_train_with_bugs([bug], **TINY)
    return out


def test_without_bugs_the_weights_change(monkeypatch):
    run, start, end = trained_weights((), monkeypatch)
    assert not run.diverged and run.message.startswith("Finished 3 meta-steps")
    assert any(not torch.equal(start[k], end[k]) for k in start)


def test_with_bug_1_the_meta_model_is_bit_for_bit_unchanged(monkeypatch):
    run, start, end = trained_weights(["copy"], monkeypatch)
    assert all(torch.equal(start[k], end[k]) for k in start)
    assert len(set(run.history.val_accuracy)) == 1  # the same tasks scored on the same weights


@pytest.mark.parametrize("bug", list(BUGS))
def test_each_switch_changes_the_run(runs, bug):
    a, b = runs["none"].history, runs[bug].history
    assert (a.query_loss, a.val_accuracy) != (b.query_loss, b.val_accuracy), f"switching on {bug} changed nothing"
    assert runs[bug].bugs == (bug,) and not runs[bug].diverged


def test_bugs_come_back_in_a_fixed_order_and_a_single_name_is_accepted():
    run = meta_train_with_bugs(("train_classes", "copy"), iterations=1, meta_batch_size=1, inner_steps=1,
                               val_tasks=2)
    assert run.bugs == ("copy", "train_classes") and "meta-training classes" in run.message
    assert meta_train_with_bugs("copy", iterations=1, meta_batch_size=1, inner_steps=1, val_tasks=2).bugs == ("copy",)


def test_an_unknown_bug_is_a_value_error_listing_the_valid_names():
    with pytest.raises(ValueError) as error:
        meta_train_with_bugs(["copy", "graph_cut"], **TINY)
    assert "'graph_cut'" in str(error.value)
    assert all(repr(name) in str(error.value) for name in BUGS)


def test_divergence_ends_with_a_message_not_an_exception():
    run = meta_train_with_bugs((), iterations=3, meta_batch_size=2, inner_steps=2, val_tasks=4, val_points=1,
                               inner_lr=1e6, meta_lr=10.0)
    assert run.diverged and run.message.startswith("Diverged at meta-step")
    assert len(run.history.iteration) < 3 and run.history.val_accuracy  # what came before is kept


def test_the_figure_does_not_touch_pyplot(runs):
    plt.close("all")
    fig = plot_bug_runs(runs["copy"], runs["none"])
    assert isinstance(fig, Figure) and plt.get_fignums() == []
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[0].startswith("correct loop") and labels[1].startswith("bugs 1") and labels[2].startswith("chance")


def test_the_figure_draws_a_run_that_diverged_before_its_first_step():
    empty = BugRun(("no_query",), History(val_iteration=[0], val_accuracy=[0.5], val_ci95=[0.1]), True, "Diverged")
    fig = plot_bug_runs(empty, empty)
    assert "diverged" in fig.axes[0].get_legend().get_texts()[1].get_text()


def test_a_fresh_model_is_the_one_notebook_03_builds():
    seed_everything(0)
    reference = build_model("mlp", 5)
    assert sum(p.numel() for p in reference.parameters()) == 784 * 256 + 256 + 256 * 5 + 5


def test_a_kept_sampler_draws_what_a_new_one_would():
    from fomaml_utils.data.tasks import FewShotSampler
    kept = bugs_module._sampler(FewShotSampler, "val", 5, 1, 15, None, 3)
    kept.sample(2)
    again = bugs_module._sampler(FewShotSampler, "val", 5, 1, 15, None, 3)
    expected = FewShotSampler("unseen-digits", "val", 5, 1, 15, seed=3).sample(2)
    assert all(torch.equal(a, b) for a, b in zip(again.sample(2), expected))

"""Draw the README's picture: one 5-way 1-shot task of the unseen-digits split.

    .venv/bin/python docs/make_figure.py     # writes docs/task.png
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from fomaml_utils.companions.plots import plot_task  # noqa: E402
from fomaml_utils.data.tasks import FewShotSampler  # noqa: E402
from fomaml_utils.seeding import seed_everything  # noqa: E402

seed_everything(0)
sampler = FewShotSampler("unseen-digits", "test", ways=5, shots=1, queries=3, seed=0)
batch, class_idx = sampler.sample(1, return_classes=True)
figure = plot_task(batch, 0, classes=sampler.task_classes(class_idx[0]),
                   title="A 5-way 1-shot task of unseen digits 7–9, rotated: adapt on the support row, score on the queries")
figure.savefig(Path(__file__).with_name("task.png"), dpi=80, bbox_inches="tight")

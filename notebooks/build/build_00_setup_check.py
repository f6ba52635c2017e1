"""Writes notebooks/00_setup_check.ipynb from the cells below (without outputs).

Run from the repository root, then execute the notebook to store its outputs:

    .venv/bin/python notebooks/build/build_00_setup_check.py
    .venv/bin/python notebooks/build/execute.py notebooks/00_setup_check.ipynb   (or `make outputs` for all)
"""

from __future__ import annotations

from pathlib import Path

from nbbuild import NotebookBuilder

OUT = Path(__file__).resolve().parents[1] / "00_setup_check.ipynb"

notebook = NotebookBuilder()
md, code = notebook.md, notebook.code

md(r"""# 00 · Setup check: MNIST and few-shot tasks

**What you will learn.** That your environment works, what the data looks like, and what a
*few-shot task* is in this series: an $N$-way $K$-shot classification problem with a small
*support* set to learn from and a *query* set to be scored on.

**What you need to have read.** Nothing from the series yet; the README's `make lab` has set up the
environment and the data.

**How long it runs.** About 15 seconds on a laptop CPU (most of it loading MNIST once).""")

code(r"""# NBVAL_IGNORE_OUTPUT
%matplotlib inline
import platform

import torch
import torchvision

from fomaml_utils.mnist import CLASS_COUNTS, MNIST_MEAN, MNIST_STD, load_mnist, normalize_images
from fomaml_utils.plots import plot_task
from fomaml_utils.seeding import seed_everything
from fomaml_utils.tasks import SPLITS, TRAIN_IMAGES, FewShotSampler

seed_everything(0, threads=1)  # seeds, and one torch thread: results depend on the thread count
print(f"Python {platform.python_version()}, torch {torch.__version__}, torchvision {torchvision.__version__}")
print(f"CPU threads: {torch.get_num_threads()}")""")

md(r"""## 1. MNIST through torchvision

`load_mnist` returns torchvision's own `MNIST` dataset, read from `data/MNIST/raw/` (the Makefile
prepared it). Each item is a normalised image `[1, 28, 28]` and its digit.""")

code(r"""train_set = load_mnist(train=True)
test_set = load_mnist(train=False)
image, digit = train_set[0]
print(f"training file: {len(train_set):,} images, test file: {len(test_set):,} images")
print(f"one item: image {list(image.shape)} {image.dtype}, label {digit}")
assert (len(train_set), len(test_set)) == (60_000, 10_000)""")

md(r"""The series splits the training file in two: images 0–49,999 for meta-training and images
50,000–59,999 (the original MNIST validation part) for monitoring curves during meta-training. The
10,000 test images are kept for the final meta-test. Every digit is well represented in each part:""")

code(r"""train_counts = torch.bincount(train_set.targets[:TRAIN_IMAGES], minlength=10)
val_counts = torch.bincount(train_set.targets[TRAIN_IMAGES:], minlength=10)
test_counts = torch.bincount(test_set.targets, minlength=10)
print(f"{'digit':>5} {'train':>7} {'val':>6} {'test':>6}")
for d in range(10):
    print(f"{d:>5} {train_counts[d]:>7,} {val_counts[d]:>6,} {test_counts[d]:>6,}")
print(f"{'all':>5} {train_counts.sum():>7,} {val_counts.sum():>6,} {test_counts.sum():>6,}")
assert (train_counts + val_counts).tolist() == list(CLASS_COUNTS["train"])
assert test_counts.tolist() == list(CLASS_COUNTS["test"])""")

md(r"""## 2. The transform

Pixels $p \in \{0, \dots, 255\}$ are scaled to $[0, 1]$ and standardised with the training set's
mean and standard deviation:

$$x = \frac{p / 255 - \mu}{\sigma}, \qquad \mu = 0.1307, \quad \sigma = 0.3081 .$$

`normalize_images` does the same to a whole uint8 batch at once; the task sampler uses it. Both
must give the same numbers, bit for bit:""")

code(r"""print(train_set.transform)
batch = normalize_images(train_set.data[:1000])
same = all(torch.equal(batch[i], train_set[i][0]) for i in range(1000))
print(f"transform and normalize_images agree on the first 1,000 images: {same}")
x = normalize_images(train_set.data[:TRAIN_IMAGES])
print(f"meta-training images after the transform: mean {x.mean():.3f}, std {x.std():.3f}, "
      f"range [{x.min():.3f}, {x.max():.3f}]")
assert same and abs(x.mean()) < 0.01 and abs(x.std() - 1) < 0.01
del x""")

md(r"""The training pixels now have mean 0 and standard deviation 1, as intended; a background
pixel is $-\mu/\sigma \approx -0.424$.

## 3. Few-shot tasks

An **$N$-way $K$-shot task** picks $N$ classes, gives them the labels $0, \dots, N-1$ in random
order, and draws $K$ *support* images and $Q$ *query* images per class, all distinct. A learner
adapts to the support set and is scored on the query set. A **class** is a pair
(digit, rotation): a 7 rotated by 90° counter-clockwise is a class of its own, as rotated characters
are on Omniglot. A **split** says which classes are for meta-training and which for meta-test:""")

code(r"""for name, split in SPLITS.items():
    print(f"{name}: {len(split.train_classes)} meta-training classes, "
          f"{len(split.test_classes)} meta-test classes")
    print(f"    {split.description}\n")""")

md(r"""Each split has three parts: `train` (its meta-training classes on images 0–49,999), `val`
(its meta-test classes on images 50,000–59,999, only for monitoring) and `test` (its meta-test
classes on the test file). `FewShotSampler` draws tasks from one part, seeded:""")

code(r"""sampler = FewShotSampler("digits", "train", ways=5, shots=1, queries=3, seed=0)
print(sampler)
tasks, class_idx = sampler.sample(1, return_classes=True)
for name, t in tasks._asdict().items():
    print(f"{name:>9}: {list(t.shape)} {t.dtype}")
print("query labels of task 0:", tasks.query_y[0].tolist())
print("the class behind each label:", sampler.task_classes(class_idx[0]))""")

code(r"""fig = plot_task(tasks, classes=sampler.task_classes(class_idx[0]),
                title='Split "digits", part train: a 5-way 1-shot task')
fig""")

md(r"""The support row holds one image per label; the query rows below hold three more images of each
class. Labels are assigned at random: here label 0 is digit 6 and label 4 is digit 8, and a learner
can only read that mapping off the support set. Note how much a class varies (stroke width, slant,
the closed or open loop of the 6) and how little of it one shot shows.

The `unseen-digits` split meta-tests on digits 7–9, never seen during meta-training, in four
rotations. Here is a task from its `test` part:""")

code(r"""sampler = FewShotSampler("unseen-digits", "test", ways=5, shots=1, queries=3, seed=0)
tasks, class_idx = sampler.sample(1, return_classes=True)
print("the class behind each label:", sampler.task_classes(class_idx[0]))
fig = plot_task(tasks, classes=sampler.task_classes(class_idx[0]),
                title='Split "unseen-digits", part test: a 5-way 1-shot task')
fig""")

md(r"""With only three digits, a 5-way test task always repeats a digit in different orientations:
here three rotations of 9 and two of 8, so telling classes apart means telling rotations apart.
Some are easy (9 at 90° against 9 at 270°), some hard: an 8 is nearly symmetric, so 8 at 180°
looks like an upright 8. And a 9 turned by 180° (label 4) looks like a 6, a digit seen in
meta-training, so "unseen" is not entirely so. Each rotated class draws on its own share of the
digit's images, so no image appears twice in a task, in any orientation.

Last, `unseen-digits-5` trains on digits 0–4 only:""")

code(r"""sampler = FewShotSampler("unseen-digits-5", "train", ways=5, shots=1, queries=3, seed=0)
tasks, class_idx = sampler.sample(1, return_classes=True)
print("the class behind each label:", sampler.task_classes(class_idx[0]))
fig = plot_task(tasks, classes=sampler.task_classes(class_idx[0]),
                title='Split "unseen-digits-5", part train: a 5-way 1-shot task')
fig""")

md(r"""The five classes are digits 0–4, as in every task of this part: only the labels and the
images change from task to task. Labels are shuffled, so no fixed classifier can score above chance, but a
meta-learner can learn features for exactly these five digits and let the inner loop map them to the labels,
instead of learning to adapt to new digits; that is why this split transfers poorly to digits 5–9. We keep it
as a warning.

Sampling costs little next to meta-training, which handles on the order of a thousand tasks per
second (the numbers vary from machine to machine):""")

code(r"""# NBVAL_IGNORE_OUTPUT
import time

sampler = FewShotSampler("unseen-digits", "train", ways=5, shots=1, queries=15, seed=0)
start, n = time.perf_counter(), 0
while time.perf_counter() - start < 1.0:
    sampler.sample(16)
    n += 16
print(f"5-way 1-shot 15-query, meta-batch 16: {n / (time.perf_counter() - start):,.0f} tasks/s")
start = time.perf_counter()
sampler.sample(1000)
print(f"the same, 1,000 tasks in one call: {1000 / (time.perf_counter() - start):,.0f} tasks/s")""")

md(r"""## What we saw, and what comes next

* MNIST loads through torchvision with the published sizes and per-digit counts, and the standard
  transform standardises pixels to mean 0, standard deviation 1.
* A few-shot task is a small classification problem with random labels: a support set to adapt on,
  a query set to be scored on. Classes are (digit, rotation) pairs.
* Three splits decide what meta-training sees: all digits (`digits`), digits 0–6 in four rotations
  with 7–9 held out (`unseen-digits`), and the cautionary five-class `unseen-digits-5`.

**Next: notebook 01, the MAML objective.** We write down what it means to learn an initialisation
$\theta$ that adapts well in a few gradient steps, and compute its gradient exactly on a problem
small enough to check by hand.

**References**

- LeCun, Y., Bottou, L., Bengio, Y. and Haffner, P. (1998). *Gradient-Based Learning Applied to Document Recognition*. Proceedings of the IEEE 86(11). (MNIST.)
- Finn, C., Abbeel, P. and Levine, S. (2017). *Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks*. ICML 2017. (Section 5.2 introduces the first-order approximation.)""")


if __name__ == "__main__":
    notebook.write(OUT)

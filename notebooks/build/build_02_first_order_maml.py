"""Writes notebooks/02_first_order_maml.ipynb from the cells below (without outputs).

Run from the repository root, then execute the notebook to store its outputs (without per-cell
timestamps, so that re-running changes only what really changed):

    .venv/bin/python notebooks/build/build_02_first_order_maml.py
    .venv/bin/python notebooks/build/execute.py notebooks/02_first_order_maml.ipynb   (or `make outputs` for all)
"""

from __future__ import annotations

from pathlib import Path

from nbbuild import NotebookBuilder

OUT = Path(__file__).resolve().parents[1] / "02_first_order_maml.ipynb"

notebook = NotebookBuilder()
md, code = notebook.md, notebook.code


# ------------------------------------------------------------------------------------------- opening

md(r"""
# 02 · First-order MAML from scratch, on sinusoid regression

**What you will learn**

- How **first-order MAML (FOMAML)** comes out of the exact MAML meta-gradient of notebook 01 by dropping the
  $(I - \alpha H_j)$ factors: the meta-gradient becomes the query-loss gradient *at the adapted weights*,
  applied to the initial weights.
- How to write FOMAML in a few lines of plain PyTorch (`torch.autograd.grad`, no helper package), and check it
  against `fomaml_utils` to $10^{-6}$.
- **Reptile**, FOMAML's sibling (move $\theta$ towards $\theta'$), and how, to first order in $\alpha$, MAML, FOMAML and
  Reptile combine the same two terms with different weights: joint training, and a push towards weights where
  gradients of different batches of the same task agree. Different weights mean different end points.
- *When* the first-order approximation is good: on a real network we measure the angle and the relative
  error between the MAML and FOMAML meta-gradients as $\alpha$ and $k$ vary.
- The MAML paper's sinusoid experiment: MAML, FOMAML, Reptile and a pretrained baseline (one network fitted to
  all tasks at once), compared by the error after $0, 1, \dots, 10$ gradient steps on new tasks, by fitted
  curves, and by time and memory per meta-step; then sliders to try any task yourself.

**Before you start:** notebook `01_maml_objective.ipynb` (the MAML objective, the exact meta-gradient with its
$(I - \alpha H_j)$ factors, and what they cost).

**Running time:** one to two minutes on a 2-core laptop CPU. Everything is trained here, from nothing, with far
fewer iterations than the paper.
""")

code(r"""
%matplotlib inline
import math
import time

import matplotlib.pyplot as plt
import torch
from matplotlib.ticker import FormatStrFormatter, NullFormatter
from torch.nn import functional as F

from fomaml_utils.approx import approx
from fomaml_utils.seeding import seed_everything
from fomaml_utils.models import MLP
from fomaml_utils.maml import meta_gradient
from fomaml_utils import sinusoid

# Our network is tiny (1-40-40-1): splitting its matrix products over two threads costs more than it
# saves, and on a shared machine one thread is also far steadier.
seed_everything(0, threads=1)


def plain_log_ticks(axis, ticks):
    # A log-scaled axis labelled 0.2, 0.5, 1, ... instead of powers of ten.
    axis.set_ticks(ticks)
    axis.set_major_formatter(FormatStrFormatter("%g"))
    axis.set_minor_formatter(NullFormatter())
""")

# --------------------------------------------------------------------------------- from MAML to FOMAML

md(r"""
## 1 · From the exact meta-gradient to the first-order one

Notebook 01 adapted the meta-parameters $\theta$ (`params`) to a task by $k$ (`inner_steps`) gradient steps of
size $\alpha$ (`inner_lr`) on the support loss,

$$\theta^{(0)} = \theta, \qquad \theta^{(j+1)} = \theta^{(j)} - \alpha\,\nabla L_S\bigl(\theta^{(j)}\bigr), \qquad \theta' = \theta^{(k)},$$

and derived the exact gradient of the query loss after adaptation by the chain rule:

$$\nabla_\theta L_Q(\theta') = (I-\alpha H_0)(I-\alpha H_1)\cdots(I-\alpha H_{k-1})\;\nabla L_Q(\theta'),
\qquad H_j = \nabla^2 L_S\bigl(\theta^{(j)}\bigr).$$

Every factor is the identity minus $\alpha$ times a Hessian. **First-order MAML** (proposed with MAML itself,
Finn, Abbeel and Levine 2017, section 5.2) replaces each factor by the identity — as if $\partial\theta'/\partial\theta = I$:

$$g_{\text{FOMAML}} = \nabla L_Q(\theta') .$$

Read it slowly, because it is stranger than it looks: adapt to the task as usual, compute the ordinary
gradient of the query loss *at the adapted weights* $\theta'$, and use it to update the *initial* weights
$\theta$. What is thrown away is how a small change of $\theta$ would have changed the whole inner trajectory.
What is gained: no Hessian-vector products, no graph kept through the inner loop (memory independent of $k$),
and an inner loop you can run with any code that returns $\theta'$, even one autograd cannot see into.

The error we make is the difference of the two expressions. Expanding the product,

$$\nabla_\theta L_Q(\theta') - g_{\text{FOMAML}} = -\alpha \sum_{j=0}^{k-1} H_j\,\nabla L_Q(\theta') + O(\alpha^2),$$

so we expect it to grow roughly like $\alpha\,k$ times the size of the curvature. Section 4 measures it.

**Reptile** (Nichol, Achiam and Schulman, 2018) goes one step further and does not even use the query set:
after the same inner loop, it moves $\theta$ a fraction $\beta$ (`meta_lr`) of the way towards $\theta'$,

$$\theta \leftarrow \theta + \beta\,(\theta' - \theta), \qquad\text{i.e. its "meta-gradient" is}\quad g_{\text{Reptile}} = \theta - \theta' = \alpha \sum_{j=0}^{k-1} \nabla L_S\bigl(\theta^{(j)}\bigr),$$

the sum of *all* inner gradients rather than FOMAML's last one on fresh data. Section 5 compares what the three
updates do, to first order in $\alpha$.
""")

# ------------------------------------------------------------------------------------------ sinusoids

md(r"""
## 2 · The task family: sinusoid regression

The MAML paper's toy problem (Finn, Abbeel and Levine 2017, §5.1). A task is a sine wave

$$y = A \sin(x - \varphi), \qquad A \sim U[0.1,\,5], \quad \varphi \sim U[0,\,\pi], \quad x \sim U[-5,\,5],$$

of which the learner sees $K$ points (the support set, `shots` $= K = 5$ or $10$) and is judged by the mean
squared error on other points of the same wave (the query set). The model is the paper's: a 1-40-40-1
fully connected ReLU network. No single network can fit all waves — for every $x$, the targets range over
$[-5, 5]$ — so the model must learn to *adapt* from a handful of points.

`fomaml_utils.sinusoid.SinusoidSampler(shots, queries, seed)` draws tasks from its own seeded random stream and
returns a `TaskBatch` of `[tasks, points, 1]` tensors; `return_params=True` also returns each wave's $A$ and
$\varphi$.
""")

code(r"""
sampler = sinusoid.SinusoidSampler(shots=10, queries=10, seed=123)
batch, amplitude, phase = sampler.sample(3, return_params=True)
print("support_x", tuple(batch.support_x.shape), " support_y", tuple(batch.support_y.shape),
      " query_x", tuple(batch.query_x.shape), " dtype", batch.support_x.dtype)
for i in range(batch.num_tasks):
    print(f"task {i}: A = {amplitude[i]:.2f}, phase = {phase[i]:.2f}")
""")

code(r"""
fig, ax = plt.subplots(figsize=(8, 3.5))
grid = torch.linspace(-5, 5, 200)
for i, color in enumerate(["C0", "C1", "C2"]):
    ax.plot(grid, sinusoid.sinusoid(grid, amplitude[i], phase[i]), color=color, lw=1, alpha=0.6)
    ax.scatter(batch.support_x[i], batch.support_y[i], color=color, marker="^", label=f"task {i}: support")
    ax.scatter(batch.query_x[i], batch.query_y[i], color=color, marker="o", facecolors="none",
               label=f"task {i}: query")
ax.set(title="Three sinusoid tasks, K = 10 support and 10 query points each", xlabel="input x",
       ylabel="output y")
ax.legend(ncol=3, fontsize="small", loc="lower center")
plt.show()
""")

md(r"""
Each colour is one task: the learner gets the triangles and must predict the circles. Between tasks the same
$x$ maps to very different $y$, so what can be shared is only the *shape* of the family (smooth, periodic
with period $2\pi$, amplitude at most 5) — which is what a good initialisation has to encode.
""")

# ---------------------------------------------------------------------------------------- from scratch

md(r"""
## 3 · FOMAML from scratch

We write the network as a plain function of a dictionary of weights, so that the adapted weights $\theta'$
are just another dictionary. The names match `fomaml_utils.models.MLP`'s parameters, which lets us compare
with the package at the end.
""")

code(r"""
def forward(params, x):
    # The 1-40-40-1 ReLU network as a function of its weights. x: [n, 1] -> predictions [n, 1].
    h = x
    for i in range(3):
        h = h @ params[f"layers.{i}.weight"].T + params[f"layers.{i}.bias"]   # weight [out, in], bias [out]
        if i < 2:
            h = torch.relu(h)
    return h


def loss_fn(params, x, y):
    # Mean squared error of the network with weights `params` on the points (x, y), both [n, 1].
    return ((forward(params, x) - y) ** 2).mean()
""")

md(r"""
The inner loop is the equation $\theta^{(j+1)} = \theta^{(j)} - \alpha\nabla L_S(\theta^{(j)})$, line by line:

- `torch.autograd.grad(loss, weights)` returns $\nabla L_S$ at the current weights, one tensor per weight;
- **without** `create_graph=True` these gradients are plain numbers: autograd will not differentiate through
  them later. That is exactly the first-order approximation. (With `create_graph=True` the same loop gives
  the exact MAML gradient of notebook 01.)
- the new dictionary `w - inner_lr * g` is $\theta^{(j+1)}$.
""")

code(r"""
def inner_loop(params, support_x, support_y, inner_lr, inner_steps, create_graph=False):
    # k plain gradient steps on the support loss; returns the adapted weights θ′ (a new dict).
    adapted = params
    for _ in range(inner_steps):
        loss = loss_fn(adapted, support_x, support_y)
        grads = torch.autograd.grad(loss, list(adapted.values()), create_graph=create_graph)
        adapted = {name: w - inner_lr * g for (name, w), g in zip(adapted.items(), grads)}
    return adapted
""")

md(r"""
The FOMAML meta-gradient of a batch of tasks is the mean over tasks of $\nabla L_Q(\theta')$: adapt, evaluate
the query loss at $\theta'$, and differentiate it **with respect to $\theta'$** — the adapted weights, not the
initial ones. The result has the shapes of $\theta$ and is applied to $\theta$.
""")

code(r"""
def fomaml_gradient(params, batch, inner_lr, inner_steps):
    # Mean over the tasks of `batch` of ∇L_Q(θ′); same keys and shapes as `params`.
    total = {name: torch.zeros_like(w) for name, w in params.items()}
    for support_x, support_y, query_x, query_y in zip(*batch):       # one task at a time: [K, 1] tensors
        adapted = inner_loop(params, support_x, support_y, inner_lr, inner_steps)
        query_loss = loss_fn(adapted, query_x, query_y)
        grads = torch.autograd.grad(query_loss, list(adapted.values()))   # gradient at θ′ ...
        for name, g in zip(total, grads):
            total[name] += g / batch.num_tasks                         # ... added to θ's gradient
    return total
""")

md(r"""
Now the same with the package. `meta_gradient(model, params, batch, algorithm=..., inner_lr, inner_steps)`
returns a `MetaGradient(grads, query_loss, query_accuracy)`; we compare its `grads` with ours on 25 tasks,
for one and for five inner steps.
""")

code(r"""
seed_everything(0)
model = MLP(1, (40, 40), 1)
params = dict(model.named_parameters())                 # θ, with requires_grad=True
check_batch = sinusoid.SinusoidSampler(shots=10, queries=10, seed=1).sample(25)

for steps in (1, 5):
    ours = fomaml_gradient(params, check_batch, inner_lr=0.01, inner_steps=steps)
    package = meta_gradient(model, params, check_batch, algorithm="fomaml", inner_lr=0.01, inner_steps=steps)
    error = max((ours[name] - package.grads[name]).abs().max().item() for name in ours)
    assert error < 1e-6, error
    print(f"inner_steps={steps}: FOMAML from scratch agrees with fomaml_utils to 1e-6")
""")

md(r"""
Two more one-line checks of the equations of section 1, with the same `inner_loop`: Reptile's direction is
$\theta - \theta'$, and with `create_graph=True`, differentiating the query loss with respect to $\theta$ (not
$\theta'$) gives MAML's exact meta-gradient.
""")

code(r"""
task = check_batch.task(0)
support_x, support_y, query_x, query_y = (t[0] for t in task)

adapted = inner_loop(params, support_x, support_y, inner_lr=0.01, inner_steps=5)
reptile = meta_gradient(model, params, task, algorithm="reptile", inner_lr=0.01, inner_steps=5).grads
assert all(torch.allclose(params[n] - adapted[n], reptile[n], rtol=0, atol=1e-6) for n in params)

adapted = inner_loop(params, support_x, support_y, inner_lr=0.01, inner_steps=5, create_graph=True)
exact = torch.autograd.grad(loss_fn(adapted, query_x, query_y), list(params.values()))
maml = meta_gradient(model, params, task, algorithm="maml", inner_lr=0.01, inner_steps=5).grads
assert all(torch.allclose(e, maml[n], rtol=0, atol=1e-6) for e, n in zip(exact, params))
print("Reptile (θ − θ′) and second-order MAML agree with fomaml_utils to 1e-6")
""")

md(r"""
From here on we use the package: the same arithmetic, vectorised over tasks, with argument checks.
""")

# ------------------------------------------------------------------------------ approximation quality

md(r"""
## 4 · When is the first-order gradient close to the exact one?

For a batch of 100 tasks we compute both meta-gradients, flatten each into one vector of all 1,761 weights,
and compare them two ways:

- **cosine similarity** $\cos\angle(g_{\text{MAML}}, g_{\text{FOMAML}})$: 1 means the same direction, which is
  what matters most to a meta-optimiser like Adam;
- **relative error** $\lVert g_{\text{FOMAML}} - g_{\text{MAML}}\rVert / \lVert g_{\text{MAML}}\rVert$: how much of
  the exact gradient is missing or wrong.

Section 1 predicts that the error grows with $\alpha$ and with $k$. We sweep both, first at a freshly
initialised network and, in section 7, at the initialisation MAML learns.
""")

code(r"""
INNER_LRS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05)
INNER_STEPS = (1, 2, 5, 10)
agreement_batch = sinusoid.SinusoidSampler(shots=10, queries=10, seed=2).sample(100)


def flat(grads):
    return torch.cat([g.flatten() for g in grads.values()])


def agreement(params, batch):
    # {k: [(cosine, relative error) for each α in INNER_LRS]} between the FOMAML and MAML meta-gradients.
    table = {}
    for k in INNER_STEPS:
        table[k] = []
        for inner_lr in INNER_LRS:
            kw = dict(inner_lr=inner_lr, inner_steps=k)
            exact = flat(meta_gradient(model, params, batch, algorithm="maml", **kw).grads)
            first = flat(meta_gradient(model, params, batch, algorithm="fomaml", **kw).grads)
            table[k].append((F.cosine_similarity(exact, first, dim=0).item(),
                             ((first - exact).norm() / exact.norm()).item()))
    return table
""")

code(r"""
def print_agreement(table, where):
    # "diverged": the inner loop itself blew up (steps too large for these tasks), so there is nothing to compare.
    print(f"cosine similarity / relative error, FOMAML vs MAML, {where}")
    print("  k  " + "".join(f"  α={lr:<11g}" for lr in INNER_LRS))
    for k, row in table.items():
        print(f"{k:>3}  " + "".join(f"  {c:6.3f} / {e:5.2f}" if math.isfinite(c) else "  diverged       "
                                      for c, e in row))


def plot_agreement(table, where):
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    for k, row in table.items():
        left.plot(INNER_LRS, [c for c, _ in row], "o-", label=f"k = {k}")
        right.plot(INNER_LRS, [e for _, e in row], "o-", label=f"k = {k}")
    left.set(xscale="log", xlabel="inner learning rate α", ylabel="cosine similarity",
             title=f"Direction: FOMAML vs MAML ({where})")
    right.set(xscale="log", yscale="log", xlabel="inner learning rate α", ylabel="relative error",
              title=f"Size of the error ({where})")
    plain_log_ticks(right.yaxis, [0.02, 0.05, 0.1, 0.2, 0.5, 1, 2])
    left.legend(); right.legend()
    plt.show()


random_init = {name: w.detach().clone() for name, w in params.items()}
random_table = agreement(random_init, agreement_batch)
print_agreement(random_table, "random initialisation")
plot_agreement(random_table, "random initialisation")
""")

md(r"""
What the table says, in words written by code from the table's own numbers:
""")

code(r"""
from IPython.display import Markdown, display

def entry(inner_lr, k):  # (cosine, relative error) at random initialisation
    return random_table[k][INNER_LRS.index(inner_lr)]

small, paper = entry(0.001, 1), entry(0.01, 1)
per_alpha_k = {(lr, k): entry(lr, k)[1] / (lr * k) for lr, k in ((0.001, 1), (0.001, 10), (0.01, 1))}
display(Markdown(
    f"With one step of $\\alpha = 0.001$ the two gradients point the same way (cosine {small[0]:.3f}) and differ "
    f"by {100 * small[1]:.0f} %. While $\\alpha k$ is small, the relative error divided by $\\alpha k$ stays near "
    + ", ".join(f"{v:.0f} ($\\alpha = {lr:g}, k = {k}$)" for (lr, k), v in per_alpha_k.items())
    + f". At the paper's setting, one step of $\\alpha = 0.01$, FOMAML keeps the direction (cosine {paper[0]:.3f}) "
    f"and differs from the exact gradient by {100 * paper[1]:.0f} % of its length."))
""")

md(r"""
The error grows in proportion to $\alpha$ and to $k$, as the expansion $-\alpha\sum_j H_j \nabla L_Q(\theta')$
predicts: on these tasks the support Hessians act on the query gradient with a typical scale of about 20 (the
ratios above), and the right panel's lines are parallel, spaced by the factor $k$. Once $\alpha k$ reaches 0.1
the error is about as large as the gradient itself, and the first-order gradient is a different vector.
Whether that matters for *learning* is a separate question; the experiments below answer it.
""")

# ---------------------------------------------------------------------------------- Reptile analysis

md(r"""
## 5 · How MAML, FOMAML and Reptile relate (the Reptile paper's argument)

Nichol, Achiam and Schulman (2018) compared the three updates by Taylor-expanding them in $\alpha$. Here is
their argument, for the smallest interesting case. A task shows us two batches of data, $A$ and $B$ (for MAML
and FOMAML: support and query; for Reptile: the batches of two successive inner steps). Write
$g_A = \nabla L_A(\theta)$, $H_A = \nabla^2 L_A(\theta)$ and likewise for $B$, all at the *initial* weights.
One inner step on $A$ gives $\theta' = \theta - \alpha g_A$, and to first order in $\alpha$

$$\nabla L_B(\theta') = g_B - \alpha H_B\, g_A + O(\alpha^2).$$

Putting this into the three updates (Reptile's divided by $\alpha$, so that all are on the scale of a gradient):

| | update direction | to first order in $\alpha$ |
|---|---|---|
| MAML | $(I - \alpha H_A)\,\nabla L_B(\theta')$ | $g_B - \alpha H_B g_A - \alpha H_A g_B$ |
| FOMAML | $\nabla L_B(\theta')$ | $g_B - \alpha H_B g_A$ |
| Reptile, 2 steps | $\bigl(g_A + \nabla L_B(\theta')\bigr)$ | $g_A + g_B - \alpha H_B g_A$ |

Now average over tasks. Given the task, the two batches are independent samples of it, so $A$ and $B$ can be
swapped inside the expectation:

- $\mathbb{E}[g_A] = \mathbb{E}[g_B] = G$, the gradient of the average loss over all tasks: plain **joint
  training**, what the pretrained baseline of section 6 does (one network fitted to all tasks at once);
- $\mathbb{E}[H_B g_A] = \mathbb{E}[H_A g_B] = \tfrac12\nabla_\theta\,\mathbb{E}[g_A\cdot g_B]$, because the gradient of
  the inner product $g_A \cdot g_B$ is $H_A g_B + H_B g_A$.

So in expectation

$$\mathbb{E}[g_{\text{MAML}}] = G - \alpha\,\nabla\mathbb{E}[g_A\cdot g_B], \qquad
\mathbb{E}[g_{\text{FOMAML}}] = G - \tfrac{\alpha}{2}\nabla\mathbb{E}[g_A\cdot g_B], \qquad
\mathbb{E}[g_{\text{Reptile}}] = 2G - \tfrac{\alpha}{2}\nabla\mathbb{E}[g_A\cdot g_B].$$

Descending along these, all three do the same two things: lower the average loss (joint training), and
*raise* $\mathbb{E}[g_A\cdot g_B]$, the inner product between gradients of **different batches of the same
task**. When those gradients agree, a step taken on one batch also helps on the other — the network
generalises within a task after a step, which is what fast adaptation means. The three weigh the two forces
differently: FOMAML keeps half of MAML's second term, Reptile the same half but twice the joint training. So
they do not converge to the same point: each stops where *its own* expected update vanishes. Two consequences
to keep in mind:

- **Reptile with $k = 1$ is joint training** (there is no second batch), so Reptile needs $k \ge 2$; we use
  $k = 5$ below.
- Our Reptile takes every inner step on the *same* support set, so its "two batches" coincide and its second
  term raises $\lVert g_S \rVert^2$ (steep, quickly-learnable support losses) rather than agreement between
  different samples. FOMAML and MAML always get the cross-batch version, because their query set is a fresh
  sample of the task.
""")

# ---------------------------------------------------------------------------------------------- training

md(r"""
## 6 · Training MAML, FOMAML, Reptile and a pretrained baseline

The paper's setting, except for the length of training:

- 1-40-40-1 ReLU network, inner learning rate $\alpha = 0.01$, meta-batch of 25 tasks, Adam for the outer
  loop, $K = 5$ or $K = 10$ support points and 10 query points per task, one model per $K$;
- MAML and FOMAML with $k = 1$ inner step, Reptile with $k = 5$ (section 5);
- **2,000 meta-iterations** with meta learning rate $\beta = 0.003$, instead of the paper's 70,000 with
  $\beta = 0.001$, so that the whole notebook runs in about two minutes. The numbers below are therefore
  higher than the paper's; the comparison between methods is what we are after.

`meta_train(model, sampler, algorithm=..., ...)` from `fomaml_utils.training` runs the loop: sample 25 tasks,
`meta_gradient`, one Adam step on $\theta$ (for Reptile, Adam is handed $\theta - \theta'$ in place of a gradient,
the usual practice since the Reptile paper). The **pretrained baseline** (`sinusoid.train_pretrained`) fits one
network to all tasks jointly: every step pools the points of 25 fresh tasks into one regression data set
and takes an Adam step on the mean squared error, the same number of steps as the meta-learners.
""")

code(r"""
from fomaml_utils.training import meta_train

SHOTS = (5, 10)
ITERATIONS = 2000
COMMON = dict(inner_lr=0.01, meta_lr=0.003, meta_batch_size=25, iterations=ITERATIONS, progress=False)
ALGORITHMS = {"MAML": dict(algorithm="maml", inner_steps=1),
              "FOMAML": dict(algorithm="fomaml", inner_steps=1),
              "Reptile": dict(algorithm="reptile", inner_steps=5)}
# The final query MSE (mean of the last 100 meta-steps) varies a little between machines. `approx` prints it
# marked ≈ and checks it against the middle of the range we measured (six numeric settings on an AMD CPU and
# one Intel CPU), ± TRAINED_TOL: three times the largest half-range of these six figures, 0.025
# (notebooks/build/tolerances.md).
TRAINED = {5: {"MAML": 0.879, "FOMAML": 0.962, "Reptile": 0.861}, 10: {"MAML": 0.667, "FOMAML": 0.914, "Reptile": 0.283}}
TRAINED_TOL = 0.08

initialisations = {shots: {} for shots in SHOTS}   # {K: {name: θ}}
histories = {shots: {} for shots in SHOTS}
for shots in SHOTS:
    for name, config in ALGORITHMS.items():
        seed_everything(0)
        net = MLP(1, (40, 40), 1)                    # the same initial weights for every method
        histories[shots][name] = meta_train(net, sinusoid.SinusoidSampler(shots, 10, seed=0), **config, **COMMON)
        initialisations[shots][name] = {n: w.detach().clone() for n, w in net.named_parameters()}
        last = sum(histories[shots][name].query_loss[-100:]) / 100
        print(f"K = {shots:2d}, {name:7s} (k = {config['inner_steps']}): query MSE after the inner loop, "
              f"mean of the last 100 meta-steps: {approx(last, TRAINED[shots][name], TRAINED_TOL)}")
""")

code(r"""
seed_everything(0)
pretrained = MLP(1, (40, 40), 1)
pretrained_losses = sinusoid.train_pretrained(pretrained, sinusoid.SinusoidSampler(10, 10, seed=0),
                                              lr=0.003, iterations=ITERATIONS, tasks_per_step=25)
print(f"pretrained: mean pooled MSE over the last 100 steps {approx(pretrained_losses[-100:].mean(), 3.0915, 0.003)}")
for shots in SHOTS:   # one regressor for all tasks, whatever K
    initialisations[shots] = {"pretrained": {n: w.detach().clone() for n, w in pretrained.named_parameters()},
                              **initialisations[shots]}
""")

code(r"""
def smooth(values, width=50):
    values = torch.tensor(values)
    return values.unfold(0, width, 1).mean(dim=1)

fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
for ax, shots in zip(axes, SHOTS):
    for name, history in histories[shots].items():
        ax.plot(history.iteration[49:], smooth(history.query_loss), label=name)
    ax.plot(range(50, ITERATIONS + 1), smooth(pretrained_losses.tolist()), label="pretrained (pooled, no adaptation)")
    ax.set(ylim=(0, 4.5), title=f"Meta-training, K = {shots} (running mean of 50 steps)",
           xlabel="meta-iteration", ylabel="query MSE after the inner loop")
axes[0].legend()
plt.show()
""")

md(r"""
All three meta-learners drive the post-adaptation query loss far below what a single regressor achieves for all
tasks at once: the pretrained curve, whose loss involves no adaptation, flattens near 3, the error of the best
single curve $\mathbb{E}[A\sin(x-\varphi)] = -\tfrac{2\,\mathbb{E}[A]}{\pi}\cos x$. (Reptile's curve is lower partly
because its loss is measured after 5 inner steps, not 1.) The meta-learners' curves are still going down at
2,000 iterations: longer training would help all three.
""")

# -------------------------------------------------------------------------- agreement at trained init

md(r"""
## 7 · The first-order approximation at the learned initialisation

Section 4 measured the FOMAML error at random weights. MAML's initialisation is a special point: it was chosen
so that *one* step changes the loss a lot, which suggests large curvature there. Same sweep, at the MAML
initialisation trained for $K = 10$. This point comes out of a training run, so its figures differ from machine
to machine; they are printed with the mark ≈ (`fomaml_utils.approx`), which also checks each against the range
it takes on the machines we measured.
""")

code(r"""
maml_table = agreement(initialisations[10]["MAML"], agreement_batch)
plot_agreement(maml_table, "MAML initialisation")
cosine, error = maml_table[1][INNER_LRS.index(0.01)]
# Measured on seven runs (tolerances.md): cosine 0.61 to 0.84, relative error 0.57 to 0.94; ± 3 half-ranges.
print(f"At the training setting α = 0.01, k = 1: cosine {approx(cosine, 0.72, 0.35)}, "
      f"relative error {approx(error, 0.76, 0.56, fmt='.2f')}")
""")

md(r"""
The approximation is much worse here. At the training setting the cosine falls from 0.993 at random weights to
the value printed above, and the relative error from 0.20 to several times as much; for every $\alpha k$ up to
0.005 the error is several times what it was at random weights. These two figures are the least reproducible
of the series: over seven runs on two CPUs (six numeric settings on one) the cosine ranged from 0.61 to 0.84
(the range beside each figure in the code says how far it may move). Where $\alpha k$ reaches about 0.02
and beyond, the two gradients are nearly unrelated, and the right-hand part of these curves is not a fact to
read: on another machine (or with another seed) it looks different, and a cosine there can even change sign.
Why is the approximation worse here? Compare the sizes of the vectors themselves:
""")

code(r"""
def norms(theta):
    kw = dict(inner_lr=0.01, inner_steps=1)
    exact = flat(meta_gradient(model, theta, agreement_batch, algorithm="maml", **kw).grads)
    first = flat(meta_gradient(model, theta, agreement_batch, algorithm="fomaml", **kw).grads)
    return exact.norm().item(), first.norm().item(), (first - exact).norm().item()

exact, first, dropped = norms(random_init)
print(f"random initialisation:  |g_MAML| = {exact:.3f}   |g_FOMAML| = {first:.3f}   |g_FOMAML - g_MAML| = {dropped:.3f}")
# Trained, so the norms vary between machines: by up to ±0.17 around these values on seven runs; ± 3 × 0.17.
exact, first, dropped = norms(initialisations[10]["MAML"])
print(f"  MAML initialisation:  |g_MAML| = {approx(exact, 0.83, 0.52)}   |g_FOMAML| = {approx(first, 0.89, 0.52)}   "
      f"|g_FOMAML - g_MAML| = {approx(dropped, 0.61, 0.52)}")
""")

md(r"""
The term FOMAML drops, $\lVert g_{\text{FOMAML}} - g_{\text{MAML}}\rVert$, is about as large as at random weights
(a little larger); what changed is the exact gradient, which is about three times smaller: after training,
MAML's meta-gradient of a batch of tasks is small, so the same dropped term is a large part of it. (These are
one batch's norms, dominated by which tasks were drawn; they do not show where either method's *expected*
update vanishes. Section 5's expansion says those points differ, because the two weigh their terms
differently.) The next section measures how much worse FOMAML's initialisation is.
""")


# -------------------------------------------------------------------------------------------- evaluation

md(r"""
## 8 · Few-shot regression on new tasks

The test of an initialisation is what a few gradient steps from it achieve on tasks it has never seen. For
each $K$ we draw **500 held-out tasks** (a sampler with a seed not used in training), each with $K$ support
points and 100 query points. `evaluate` from `fomaml_utils.evaluation` adapts every initialisation to every
task with plain gradient descent ($\alpha = 0.01$, the training value, for all four) and reports the query MSE
after $0, 1, \dots, 10$ steps, averaged over tasks, with a 95 % confidence interval for the mean. All four see
the *same* 500 tasks. The cell prints the error after 1 and after 10 steps; the figure below it shows every step.
""")

code(r"""
from fomaml_utils.evaluation import evaluate

results = {shots: {} for shots in SHOTS}   # {K: {name: Evaluation}}
for shots in SHOTS:
    for name, init in initialisations[shots].items():
        held_out = sinusoid.SinusoidSampler(shots, queries=100, seed=1000)
        results[shots][name] = evaluate(model, held_out, inner_lr=0.01, inner_steps=10, num_tasks=500, params=init)

# Mean query MSE after 1 and after 10 steps: the middle of the range on seven runs (tolerances.md), and for each K
# a tolerance of three times the largest half-range (0.023 for K = 5, 0.045 for K = 10).
EVALUATED = {5: {"pretrained": (2.622, 2.423), "MAML": (0.886, 0.488), "FOMAML": (0.944, 0.550),
                 "Reptile": (1.300, 0.758)},
             10: {"pretrained": (2.425, 1.621), "MAML": (0.625, 0.226), "FOMAML": (0.940, 0.300),
                  "Reptile": (0.770, 0.212)}}
EVAL_TOL = {5: 0.07, 10: 0.14}
print("query MSE on 500 held-out tasks (mean ± 95 % CI)")
for shots in SHOTS:
    for name, r in results[shots].items():
        cells = [f"after {step:2d} step{'s' if step > 1 else ' '}: "
                 f"{approx(r.mean[step], EVALUATED[shots][name][i], EVAL_TOL[shots], ci=r.ci95[step])}"
                 for i, step in enumerate((1, 10))]
        print(f"K = {shots:2d}, {name:12}" + "    ".join(cells))
""")

code(r"""
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
for ax, shots in zip(axes, SHOTS):
    for name, r in results[shots].items():
        ax.errorbar(r.steps, r.mean, yerr=r.ci95, marker="o", ms=3, capsize=2, label=name)
    ax.set(yscale="log", xlabel="gradient steps on the K support points", ylabel="query MSE (500 tasks)",
           title=f"K = {shots}: error after adaptation, 95 % CI")
    plain_log_ticks(ax.yaxis, [0.2, 0.3, 0.5, 1, 2, 3, 5])
axes[0].legend()
plt.show()
""")

md(r"""
Before adaptation (step 0) no initialisation is any good — none of them can know the wave yet — and the
meta-learned ones are no better than the pretrained average curve (FOMAML's for $K = 10$ is clearly worse).
After one step the picture flips. The meta-learned initialisations cut the error by a factor of two to five, the
pretrained one by a tenth to a fifth, and the gap stays wide after ten steps: fitting a new wave from a good
*average* curve takes far more than ten steps of size 0.01. Among the meta-learners, MAML is best after one
step; FOMAML is a little worse throughout, and Reptile is worst with $K = 5$ but catches up after a few steps
with $K = 10$ — in these runs, one training seed per method; rankings this close can change with the seed. Since all
four saw the same tasks, we can compare them task by task, which removes most of the task-to-task spread from
the confidence intervals:
""")

code(r"""
from fomaml_utils.evaluation import mean_confidence_interval

# Mean differences after 1 and after 10 steps, measured as above; tolerance three times the largest half-range
# (0.018 for K = 5, 0.047 for K = 10).
DIFFERENCES = {(5, "FOMAML", "MAML"): (0.061, 0.062), (5, "Reptile", "MAML"): (0.417, 0.268),
               (5, "Reptile", "FOMAML"): (0.353, 0.208), (10, "FOMAML", "MAML"): (0.336, 0.075),
               (10, "Reptile", "MAML"): (0.151, -0.014), (10, "Reptile", "FOMAML"): (-0.172, -0.085)}
DIFF_TOL = {5: 0.06, 10: 0.14}
print("difference in query MSE on the same 500 tasks (mean ± 95 % CI; positive: the first is worse)")
for (shots, a, b), expected in DIFFERENCES.items():
    r = results[shots]
    cells = []
    for i, step in enumerate((1, 10)):
        mean, ci = mean_confidence_interval(r[a].per_task[:, step] - r[b].per_task[:, step])
        cells.append(f"after {step:2d} step{'s' if step > 1 else ' '}: {approx(mean, expected[i], DIFF_TOL[shots], fmt='+.3f', ci=ci)}")
    print(f"K = {shots:2d}, {a} − {b}:".ljust(26) + "    ".join(cells))
""")

md(r"""
Task by task the differences are clear. FOMAML's initialisation is worse than MAML's by about 0.06 in MSE with
$K = 5$; with $K = 10$ by about 0.3 after one step but less than 0.1 after ten: further steps recover most of
what the first-order approximation cost. Reptile, trained with five inner steps, is worse than both with $K = 5$; with
$K = 10$ it trails MAML after one step and is level with it, or marginally better, after ten. All of this is
after 2,000 meta-iterations; the paper trained 35 times longer, and rankings of short runs can change.
""")

# ------------------------------------------------------------------------------------------ fitted curves

md(r"""
## 9 · What the fits look like

As in the paper's figure 2: one task at a time, the ground-truth wave, the $K = 5$ support points, and each
initialisation's prediction before adaptation and after 1 and 10 gradient steps (`sinusoid.plot_fits`; the
models trained for $K = 5$).
""")

code(r"""
TASKS = [(4.0, 0.5), (1.5, 2.5), (3.0, 1.5)]          # (amplitude, phase) of three waves
fig, axes = plt.subplots(len(TASKS), 4, figsize=(15, 2.9 * len(TASKS)), sharex=True, sharey=True, dpi=72)
for row, (amp, ph) in enumerate(TASKS):
    for col, (name, init) in enumerate(initialisations[5].items()):
        sinusoid.plot_fits(axes[row, col], model, init, amplitude=amp, phase=ph, shots=5, inner_lr=0.01,
                           steps=(0, 1, 10), seed=row, title=f"{name}: A = {amp}, φ = {ph}, K = 5")
axes[0, 0].legend(fontsize="small", loc="lower left")
fig.tight_layout()
plt.show()
""")

md(r"""
The pretrained network (left column) starts from the average wave and, in ten small steps, bends towards the
support points it sees; between and beyond them it keeps the average shape and underestimates large amplitudes
(top and bottom rows). The meta-learned initialisations change shape after a single step — the whole curve
shifts and stretches like a sine wave, also where there are no support points — and ten steps bring them close
to the truth. The small wave in the middle row is easy for everyone: it is close to the average.
""")

# ------------------------------------------------------------------------------------------------- cost

md(r"""
## 10 · What each meta-step costs

**Memory.** `saved_tensor_bytes` from `fomaml_utils.memory` counts the peak size of the tensors autograd keeps
for a backward pass while one meta-gradient is computed — exact and the same on every machine. We measure it
with the one-task-at-a-time implementation (`implementation="loop"`), so the numbers are *per task*; the
vectorised default keeps all 25 tasks' graphs at once, roughly 25 times as much.
""")

code(r"""
from fomaml_utils.memory import saved_tensor_bytes

cost_batch = sinusoid.SinusoidSampler(10, 10, seed=3).sample(25)
theta = initialisations[10]["MAML"]
print("peak saved-tensor memory per task, in kB (K = 10, 1-40-40-1 MLP)")
print("inner steps k" + "".join(f"{k:>9}" for k in (1, 5, 10)))
for algorithm in ("maml", "fomaml", "reptile"):
    kbytes = [saved_tensor_bytes(meta_gradient, model, theta, cost_batch, algorithm=algorithm, inner_lr=0.01,
                                 inner_steps=k, implementation="loop")[1] / 1000 for k in (1, 5, 10)]
    print(f"{algorithm:>13}" + "".join(f"{kb:9.1f}" for kb in kbytes))
""")

md(r"""
MAML's memory grows by the same amount with every inner step, because the graph of each step must survive until
the meta-backward pass; FOMAML's and Reptile's does not depend on $k$ at all: only one inner step's graph is ever
alive. (What Reptile keeps is the graph of the current inner gradient; it needs no backward pass at the end.)

**Time.** The wall-clock time of one meta-gradient on 25 tasks with the default (vectorised) implementation,
the median of 20 repetitions. These numbers depend on the machine and its load.
""")

code(r"""
# NBVAL_IGNORE_OUTPUT
def time_per_step(algorithm, k, repeats=20):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        meta_gradient(model, theta, cost_batch, algorithm=algorithm, inner_lr=0.01, inner_steps=k)
        times.append(time.perf_counter() - start)
    return 1000 * sorted(times)[repeats // 2]

print("milliseconds per meta-gradient of 25 tasks (median of 20)")
print("inner steps k" + "".join(f"{k:>9}" for k in (1, 5, 10)))
for algorithm in ("maml", "fomaml", "reptile"):
    print(f"{algorithm:>13}" + "".join(f"{time_per_step(algorithm, k):9.1f}" for k in (1, 5, 10)))
for name, history in histories[10].items():
    print(f"training {name} (K = 10, {ITERATIONS} meta-steps) took {history.seconds[-1]:.1f} s")
""")

md(r"""
MAML's time grows faster with $k$ than FOMAML's: each of its inner steps adds a Hessian-vector product, one more
backward pass. FOMAML and Reptile run the same inner loop and differ only in the last line, where Reptile skips
the query backward pass. The printed times and their ratios depend on the machine and its load. On a network
this small every number is tiny; on the convolutional networks of the MAML paper the same costs decide what fits
on a GPU and how long training takes.
""")

# ---------------------------------------------------------------------------------------------- sliders

md(r"""
## 11 · Try it yourself

Pick a wave (amplitude, phase), how many support points the learner sees, and how many gradient steps it takes.
Each initialisation (trained for $K = 10$) is adapted to your task and redrawn at once — only the inner loop
runs, nothing is retrained. The callback is `sinusoid.plot_adaptation`; the support points for $K$ shots are
the first $K$ of a fixed set of 20, so adding shots adds points rather than moving them.
""")

code(r"""
# NBVAL_IGNORE_OUTPUT
from ipywidgets import FloatSlider, IntSlider

from fomaml_utils.sliders import FigurePanel

limits = sinusoid.SLIDER_LIMITS


def redraw(amplitude, phase, shots, steps):
    ax = sinusoid.plot_adaptation(model, initialisations[10], amplitude=amplitude, phase=phase, shots=shots,
                                  steps=steps, inner_lr=0.01)
    return ax.figure


FigurePanel(redraw, dict(
    amplitude=FloatSlider(value=3.0, min=limits["amplitude"][0], max=limits["amplitude"][1], step=0.1),
    phase=FloatSlider(value=1.0, min=limits["phase"][0], max=limits["phase"][1], step=0.05),
    shots=IntSlider(value=5, min=limits["shots"][0], max=limits["shots"][1]),
    steps=IntSlider(value=1, min=limits["steps"][0], max=limits["steps"][1])))
""")

md(r"""
The same function with the sliders' starting values, as a static figure (for readers of the stored notebook):
""")

code(r"""
fig, axes = plt.subplots(1, 2, figsize=(14, 4), sharey=True)
for ax, steps in zip(axes, (1, 10)):
    sinusoid.plot_adaptation(model, initialisations[10], amplitude=3.0, phase=1.0, shots=5, steps=steps,
                             inner_lr=0.01, ax=ax)
plt.show()
""")

md(r"""
Left, after one step on the same five points: the three meta-learned curves already follow the wave, while the
pretrained one has moved only a little from the average curve. Right, after ten steps: every curve passes near
the support points, but only the meta-learned ones continue the wave beyond them (look at $x > 3$).
""")

# ---------------------------------------------------------------------------------------------- closing

md(r"""
## What we saw, and what comes next

- **FOMAML** drops every $(I - \alpha H_j)$ factor of the exact meta-gradient: it applies $\nabla L_Q(\theta')$,
  the query-loss gradient at the adapted weights, to the initial weights. In code that is an inner loop whose
  gradients are taken without `create_graph`, and a gradient with respect to $\theta'$; our few lines matched
  `fomaml_utils` to $10^{-6}$. **Reptile** replaces the query gradient by $\theta - \theta'$.
- To first order in $\alpha$, MAML, FOMAML and Reptile all follow the joint-training gradient plus a push
  towards weights where gradients of different batches of the same task agree; they weigh the two differently.
- The first-order error grows like $\alpha k$: at random weights the relative error was close to a fixed
  multiple of $\alpha k$, and at the paper's $\alpha = 0.01, k = 1$ the two gradients pointed the same way. At
  MAML's learned initialisation the relative error was several times as large — not because the dropped term
  grew, but because the exact gradient had become small there.
- On 500 new sinusoid tasks, after ten steps, the query MSE was about 0.5 / 0.25 for MAML ($K$ = 5 / 10),
  0.55 / 0.3 for FOMAML, 0.75 / 0.2 for Reptile and 2.4 / 1.6 for the pretrained baseline (one training seed
  each). FOMAML loses a little to MAML and stays far ahead of plain joint training.
- What FOMAML saves: MAML's saved-tensor memory grew in proportion to $k$, while FOMAML's and Reptile's stayed
  flat; MAML's meta-step took longer, the more so the larger $k$.
- We trained for 2,000 meta-iterations instead of the paper's 70,000, so all errors are higher than the
  paper's.

**Next:** notebook `03_fomaml_mnist.ipynb` takes the same loop to few-shot classification of MNIST digits, with
a network large enough that the second-order cost is real, against baselines and with confidence intervals.

**References**

- Finn, C., Abbeel, P. and Levine, S. (2017). *Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks*. ICML 2017. (Section 5.2 introduces the first-order approximation.)
- Nichol, A., Achiam, J. and Schulman, J. (2018). *On First-Order Meta-Learning Algorithms*. arXiv:1803.02999.
- Pearlmutter, B. A. (1994). *Fast Exact Multiplication by the Hessian*. Neural Computation 6(1), 147–160.
""")


# ================================================================================ (end of the cells)


if __name__ == "__main__":
    notebook.write(OUT)

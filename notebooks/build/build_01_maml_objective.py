"""Writes notebooks/01_maml_objective.ipynb from the cells below (without outputs).

Run from the repository root, then execute the notebook to store its outputs:

    .venv/bin/python notebooks/build/build_01_maml_objective.py
    .venv/bin/python notebooks/build/execute.py notebooks/01_maml_objective.ipynb   (or `make outputs` for all)
"""

from __future__ import annotations

from pathlib import Path

from nbbuild import NotebookBuilder

OUT = Path(__file__).resolve().parents[1] / "01_maml_objective.ipynb"

notebook = NotebookBuilder()
md, code = notebook.md, notebook.code


# ------------------------------------------------------------------------------------------- opening

md(r"""
# 01 · The MAML objective and its exact gradient

**What you will learn**

- How few-shot learning is framed as learning from a *distribution of tasks*, each with a **support** set
  (to adapt on) and a **query** set (to judge the adapted model on), and why MAML learns an
  **initialisation** $\theta$ rather than a model.
- The bilevel MAML objective $\min_\theta \sum_i L_{Q_i}(\theta'_i)$ with $\theta'_i = \theta - \alpha\nabla L_{S_i}(\theta)$,
  and with $k$ inner steps.
- The exact meta-gradient by the chain rule, $\nabla_\theta L_Q(\theta') = (I - \alpha\nabla^2 L_S(\theta))\,\nabla L_Q(\theta')$,
  and its $k$-step product of $(I - \alpha H_j)$ factors, derived one line at a time.
- A two-dimensional example where every quantity has a closed form: we check the formula against autograd and
  finite differences, find the MAML optimum exactly, and move it with sliders.
- What the Hessian term costs on a real network: Hessian-vector products, and memory that grows with $k$.

**Before you start:** notebook `00_setup_check.ipynb` (the environment works); the chain rule for vectors
(Jacobians), gradient descent, and `torch.autograd.grad`.

**Running time:** about half a minute on a 2-core laptop CPU. No data is needed: the network part uses random
images, because what we measure there (memory) depends only on tensor shapes.
""")

code(r"""
%matplotlib inline
import inspect

import torch
from ipywidgets import FloatSlider, IntSlider
from matplotlib.figure import Figure

from fomaml_utils.seeding import seed_everything
from fomaml_utils.sliders import FigurePanel
from fomaml_utils import quadratic as quad

generator = seed_everything(0, threads=1)  # seeds, and one torch thread: results depend on the thread count
""")

# ------------------------------------------------------------------------------------- the set-up

md(r"""
## 1 · Few-shot learning as a distribution of tasks

In *N*-way *K*-shot classification we are handed a new **task**: *N* classes we have never trained on, with
only *K* labelled examples of each. Those $N K$ examples are the task's **support set** $S$. We must then
classify fresh examples of the same classes, the task's **query set** $Q$. A 5-way 1-shot MNIST task is five
digits, one image each, and then a few hundred more images of those five digits to label.

Meta-learning assumes that tasks come from a distribution $p(\mathcal{T})$ (here: "pick 5 digit classes at
random, label them 0–4 in random order"), and that we can sample many **training tasks** from it to prepare
for the new one. What can we carry from one task to the next?

Not a model. Label 0 means "a seven" in one task and "a two" in the next, so any single classifier is right
on one task and wrong on another; averaged over tasks it is at chance. What *is* shared is how to learn: the
same few gradient steps that fit one support set should fit any other. MAML (Finn, Abbeel and Levine, 2017)
therefore learns an **initialisation** $\theta$: a starting point from which $k$ gradient steps on a task's
support set give weights $\theta'$ that do well on that task's query set.
""")

md(r"""
## 2 · The bilevel objective

Write $L_{S_i}(\theta)$ for the loss of a network with weights $\theta$ on the support set of task $i$, and
$L_{Q_i}(\theta)$ for its loss on the query set. One inner step of size $\alpha$ (the **inner learning
rate**, `inner_lr`) adapts $\theta$ to task $i$:

$$\theta'_i = \theta - \alpha\,\nabla L_{S_i}(\theta) .$$

MAML asks for the $\theta$ whose *adapted* weights do well on the queries, summed over a batch of tasks:

$$\min_\theta \; F(\theta), \qquad F(\theta) = \sum_i L_{Q_i}\bigl(\theta'_i(\theta)\bigr) .$$

It is **bilevel**: an inner problem (adapt to one task, with $\alpha$ and $k$ fixed) sits inside an outer one
(choose $\theta$ for all tasks, with the **meta learning rate** $\beta$, `meta_lr`). With $k$ inner steps
(`inner_steps`) the adapted weights are the end of a short gradient-descent run,

$$\theta^{(0)}_i = \theta, \qquad \theta^{(j+1)}_i = \theta^{(j)}_i - \alpha\,\nabla L_{S_i}\bigl(\theta^{(j)}_i\bigr), \qquad \theta'_i = \theta^{(k)}_i .$$

Two special cases to keep in mind. With $\alpha = 0$ (or $k = 0$) nothing adapts, $\theta'_i = \theta$, and
$F$ is the plain sum of query losses: ordinary **joint training** of one model on all tasks. With a large
$k$ and a good $\alpha$ each task is fitted from almost anywhere, and $F$ hardly depends on $\theta$ at all.
MAML lives in between: few steps, so where you start matters.
""")

# ------------------------------------------------------------------------------------- derivation

md(r"""
## 3 · The meta-gradient by the chain rule

To minimise $F$ by gradient descent we need $\nabla_\theta L_Q(\theta')$ for one task (drop the index $i$;
the meta-gradient of $F$ is the sum over tasks). The query loss depends on $\theta$ only *through*
$\theta'$. One step at a time:

| | equation | in words |
|---|---|---|
| 1 | $\theta' = \theta - \alpha\,\nabla L_S(\theta)$ | the adapted weights are a function of $\theta$ |
| 2 | $\nabla_\theta L_Q(\theta') = \Bigl(\dfrac{\partial\theta'}{\partial\theta}\Bigr)^{\!\top} \nabla L_Q(\theta')$ | chain rule: the gradient at $\theta'$, pulled back through the Jacobian of the inner step |
| 3 | $\dfrac{\partial\theta'}{\partial\theta} = I - \alpha\,\nabla^2 L_S(\theta) = I - \alpha H_S(\theta)$ | differentiating $\theta$ gives $I$; differentiating a gradient gives the Hessian |
| 4 | $H_S(\theta)^\top = H_S(\theta)$ | second derivatives commute, so the Hessian is symmetric |
| 5 | $\nabla_\theta L_Q(\theta') = \bigl(I - \alpha H_S(\theta)\bigr)\,\nabla L_Q(\theta')$ | put 3 and 4 into 2 |
| 6 | $\phantom{\nabla_\theta L_Q(\theta')} = \nabla L_Q(\theta') - \alpha\, H_S(\theta)\,\nabla L_Q(\theta')$ | a first-order term, minus a Hessian term |

Here $\nabla L_Q(\theta')$ means the gradient of the query loss *with respect to its own argument*,
evaluated at $\theta'$: the gradient you would compute if someone handed you $\theta'$ as plain numbers.

**With $k$ steps** the same argument applies to each step. Step $j$ has Jacobian
$\partial\theta^{(j+1)}/\partial\theta^{(j)} = I - \alpha H_j$ with $H_j = \nabla^2 L_S(\theta^{(j)})$, the support
Hessian *at the $j$-th iterate*. Jacobians of a composition multiply, and transposing reverses the order:

$$\frac{\partial\theta'}{\partial\theta} = (I-\alpha H_{k-1})\cdots(I-\alpha H_1)(I-\alpha H_0)
\quad\Longrightarrow\quad
\nabla_\theta L_Q(\theta') = (I-\alpha H_0)(I-\alpha H_1)\cdots(I-\alpha H_{k-1})\;\nabla L_Q(\theta') .$$

In words: take the query gradient at the end of the inner loop, and walk it back through the inner steps,
last step first, multiplying by $(I - \alpha H_j)$ at each. For $k = 1$ this is line 5 again.
""")

md(r"""
**What this costs.** $H_j$ is a $p \times p$ matrix for $p$ parameters, far too big to form for a network. We
never need it, only its product with a vector. Walking back from $v = \nabla L_Q(\theta')$,

$$v \leftarrow v - \alpha\, H_j v \quad (j = k-1, \dots, 0), \qquad
H_j v = \nabla_{\phi}\bigl(\nabla L_S(\phi)^\top v\bigr)\Big|_{\phi = \theta^{(j)}} \ \text{with } v \text{ held constant},$$

the gradient taken with respect to the iterate $\theta^{(j)}$ itself, not through it back to $\theta$ (that
walk back is what the loop over $j$ does). The last identity (Pearlmutter, "Fast exact multiplication by the
Hessian", 1994) says a **Hessian-vector product** is one more backward pass,
through the graph that computed the gradient $\nabla L_S(\theta^{(j)})$. Autograd does exactly this when the
inner gradients are taken with `create_graph=True`. The price: the graphs of *all* $k$ inner steps must stay
in memory until the meta-backward pass reaches them, so memory grows with $k$, and each step costs roughly
one extra backward pass. We measure both on a network in section 5. First, an example where we can check
every symbol.
""")

# --------------------------------------------------------------------------------------- quadratics

md(r"""
## 4 · A worked example where everything is exact: quadratic tasks

Take parameters $\theta \in \mathbb{R}^2$ and give task $i$ the loss

$$L_{S_i}(\theta) = L_{Q_i}(\theta) = \tfrac12 (\theta - c_i)^\top A_i (\theta - c_i),$$

with a symmetric positive-definite curvature $A_i$ and optimum $c_i$. Support and query share $A_i$ and
$c_i$: in this toy the support set already tells the whole truth about the task. In real few-shot learning
the query set is a fresh sample, so its loss is a perturbed copy of the support loss; `fomaml_utils.quadratic`
accepts separate query optima $q_i$ for that case (the formulas get one extra term, and the tests check it),
but with $q_i = c_i$ each task has a single optimum we can draw.

Everything follows from $\nabla L_{S_i}(\theta) = A_i(\theta - c_i)$ and $\nabla^2 L_{S_i} = A_i$:

| | equation | in words |
|---|---|---|
| 1 | $\theta^{(j+1)} - c_i = \theta^{(j)} - c_i - \alpha A_i(\theta^{(j)} - c_i) = (I - \alpha A_i)(\theta^{(j)} - c_i)$ | one step shrinks the distance to the optimum by $P_i = I - \alpha A_i$ |
| 2 | $\theta'_i - c_i = P_i^{\,k}\,(\theta - c_i)$ | $k$ steps shrink it $k$ times |
| 3 | $L_{Q_i}(\theta'_i) = \tfrac12 (\theta - c_i)^\top P_i^{\,k} A_i P_i^{\,k} (\theta - c_i) = \tfrac12 (\theta - c_i)^\top M_i (\theta - c_i)$ | the post-adaptation loss is again a quadratic in $\theta$, with curvature $M_i = P_i^{\,k} A_i P_i^{\,k}$ ($P_i$ is symmetric) |
| 4 | $\nabla_\theta L_{Q_i}(\theta'_i) = P_i^{\,k}\,A_i(\theta'_i - c_i) = M_i(\theta - c_i)$ | the chain-rule formula of section 3 with every $H_j = A_i$: the product is $P_i^{\,k}$ |
| 5 | $\sum_i M_i(\theta^* - c_i) = 0 \;\Longrightarrow\; \theta^* = \bigl(\textstyle\sum_i M_i\bigr)^{-1} \sum_i M_i c_i$ | the meta-gradient vanishes at a unique point when $\sum_i M_i$ is invertible |
| 6 | $\alpha = 0$ or $k = 0$: $M_i = A_i$, $\;\theta^* = \bigl(\sum_i A_i\bigr)^{-1}\sum_i A_i c_i$ | the optimum of joint training |

So the MAML initialisation is a weighted mean of the task optima, with matrix weights $M_i$. Our three tasks
have *diagonal* $A_i$, so each coordinate can be read on its own: along a direction where task $i$ has
curvature $\lambda$, its weight is

$$w_i = \lambda\,(1 - \alpha\lambda)^{2k} .$$

Joint training weighs tasks by curvature $\lambda$ alone. MAML multiplies by $(1-\alpha\lambda)^{2k}$, which is
small for a steep task: steep tasks will be fitted by the inner steps anyway, so the initialisation need not
sit near them. The inner loop converges only if $|1 - \alpha\lambda| < 1$ for every curvature, that is
$0 < \alpha < 2/\lambda_{\max}$.
""")

code(r"""
tasks = quad.example_tasks()
for i, (A, c) in enumerate(zip(tasks.curvatures, tasks.centres), start=1):
    print(f"task {i}: optimum c = ({c[0]:+.1f}, {c[1]:+.1f}),  curvatures along θ1, θ2 = "
          f"{A[0, 0]:.1f}, {A[1, 1]:.1f}")
print(f"stable inner learning rates: 0 ≤ α < 2/λ_max = {quad.stable_inner_lr_limit(tasks):.2f}")
""")

md(r"""
Task 1 is steep along $\theta_1$, task 2 along $\theta_2$, task 3 is flat in both. `fomaml_utils.quadratic`
holds the closed forms of the table above (`adapt`, `meta_objective`, `meta_gradient`, `maml_optimum`,
`joint_optimum`), vectorised over tasks. It also computes $F$ the way a deep-learning library would: $k$
calls to `torch.autograd.grad(..., create_graph=True)`, with no formula in sight:
""")

code(r"""
print(inspect.getsource(quad.unrolled_meta_objective))
""")

md(r"""
### Check 1: the derived meta-gradient against autograd and finite differences

Three independent routes to $\nabla F(\theta)$ at a random $\theta$, for several $(\alpha, k)$:

1. **derived**: $\sum_i P_i^{\,k} A_i (\theta'_i - c_i)$, line 4 of the table;
2. **autograd**: backpropagation through `unrolled_meta_objective`, i.e. through the $k$ inner gradient steps;
3. **central finite differences** of `unrolled_meta_objective`:
   $\bigl(F(\theta + h e_j) - F(\theta - h e_j)\bigr) / 2h$. For a quadratic the truncation error is exactly
   zero, so a large $h = 10^{-3}$ is safe and keeps round-off small.

Everything is in float64, so agreement should be at round-off level, far below $10^{-9}$.
""")

code(r"""
theta = torch.randn(2, dtype=torch.float64, generator=generator)
settings = [(0.1, 1), (0.2, 3), (0.3, 5), (0.45, 10)]  # (α, k)
worst_autograd = worst_fd = 0.0
for inner_lr, inner_steps in settings:
    hyper = dict(inner_lr=inner_lr, inner_steps=inner_steps)
    derived = quad.meta_gradient(tasks, theta, **hyper)
    autograd = quad.autograd_meta_gradient(tasks, theta, **hyper)
    fd = quad.central_differences(lambda p: quad.unrolled_meta_objective(tasks, p, **hyper), theta, h=1e-3)
    worst_autograd = max(worst_autograd, (derived - autograd).abs().max().item())
    worst_fd = max(worst_fd, (derived - fd).abs().max().item())
assert worst_autograd < 1e-9 and worst_fd < 1e-9, (worst_autograd, worst_fd)
print(f"largest |derived − autograd|           over {len(settings)} settings: below 1e-9")
print(f"largest |derived − finite differences| over {len(settings)} settings: below 1e-9")
""")

md(r"""
### Check 2: the closed-form optimum against gradient descent on the meta-objective

Now run plain meta-gradient descent, $\theta \leftarrow \theta - \beta\,\nabla F(\theta)$, from $\theta = 0$
with autograd through the inner loop (`meta_gradient_descent`, step $\beta = 1/\lambda_{\max}(\sum_i M_i)$),
and compare where it stops with $\theta^* = (\sum_i M_i)^{-1}\sum_i M_i c_i$. For $\alpha = 0$ both must equal
the joint-training optimum.
""")

code(r"""
joint = quad.joint_optimum(tasks)
print(f"joint training optimum (α = 0): ({joint[0]:+.3f}, {joint[1]:+.3f})")
worst = 0.0
for inner_lr, inner_steps in [(0.0, 1)] + settings:
    closed = quad.maml_optimum(tasks, inner_lr=inner_lr, inner_steps=inner_steps)
    descended = quad.meta_gradient_descent(tasks, torch.zeros(2, dtype=torch.float64),
                                           inner_lr=inner_lr, inner_steps=inner_steps)
    worst = max(worst, (closed - descended).abs().max().item())
    print(f"α = {inner_lr:.2f}, k = {inner_steps:2d}: MAML optimum θ* = ({closed[0]:+.3f}, {closed[1]:+.3f})")
assert worst < 1e-9, worst
assert (quad.maml_optimum(tasks, inner_lr=0.0, inner_steps=1) - joint).abs().max() < 1e-12
print("largest |closed form − gradient descent|: below 1e-9")
""")

md(r"""
The closed form is right, and the MAML optimum moves a long way as $\alpha$ and $k$ change: away from the
joint-training optimum towards the flat task 3 at $(0, -2)$ as $\alpha$ and $k$ grow, and, at $\alpha = 0.45$
close to the stability limit, back towards task 1 along $\theta_1$. The picture explains both. Here it is for
one inner step with $\alpha = 0.2$.
""")

code(r"""
quad.plot_landscape(tasks, inner_lr=0.2, inner_steps=1)
""")

md(r"""
The grey contours are the meta-objective $F(\theta)$, the query loss *after* one inner step, summed over
tasks; its minimum is the MAML initialisation $\theta^*$ (white circle), far from the joint-training optimum
(black cross). The arrows are the one inner step each task takes from $\theta^*$: task 1 covers 80 % of its
distance along its steep $\theta_1$ direction ($1 - \alpha\lambda = 0.2$), task 2 covers 60 % along its steep
$\theta_2$, while flat task 3 barely moves. That explains where $\theta^*$ sits. Joint training leans towards
task 1 along $\theta_1$, because task 1 is steepest there; but task 1 fixes its $\theta_1$ by itself in one
step, so MAML sets $\theta_1$ where the slow movers along $\theta_1$, tasks 2 and 3, want it. Along $\theta_2$
task 2 likewise fixes itself, and $\theta^*$ moves down towards task 3. The thin ellipses are one level set of
each task's own loss, showing its steep and flat directions.

The weights $w_i = \lambda(1-\alpha\lambda)^{2k}$ say the same in numbers, and the meta-objective confirms that
starting from $\theta^*$ pays off after adaptation:
""")

code(r"""
curvature = torch.diagonal(tasks.curvatures, dim1=1, dim2=2)  # [tasks, 2]: λ along θ1 and θ2
for inner_lr, inner_steps in [(0.0, 1), (0.2, 1), (0.2, 5)]:
    w = curvature * (1 - inner_lr * curvature) ** (2 * inner_steps)
    share = w / w.sum(0)  # each task's share of the weight, per coordinate
    cells = "   ".join(f"task {i + 1}: {s[0]:.2f}, {s[1]:.2f}" for i, s in enumerate(share))
    print(f"α = {inner_lr:.1f}, k = {inner_steps}:  weight shares along θ1, θ2 → {cells}")
print()

hyper = dict(inner_lr=0.2, inner_steps=1)
theta_star = quad.maml_optimum(tasks, **hyper)
for name, start in [("MAML optimum ", theta_star), ("joint optimum", joint)]:
    print(f"F after one step (α = 0.2) from the {name}: {quad.meta_objective(tasks, start, **hyper):.3f}")
""")

md(r"""
With $\alpha = 0$ the steep tasks dominate each coordinate (first line: along $\theta_1$ most of the weight is
task 1's). After one step of $\alpha = 0.2$ task 1's share along $\theta_1$ drops sharply, and after five steps
it is gone: five steps fit task 1's steep direction from anywhere. Starting from $\theta^*$ instead of the joint
optimum roughly halves the loss after one step of adaptation (the last two lines).

### Sliders: move $\alpha$ and $k$

Drag $\alpha$ (from 0, joint training, to just below the stability limit $2/\lambda_{\max} = 0.5$) and the
number of inner steps $k$. The figure is recomputed from the closed forms, in well under a second. Things to
try: $\alpha = 0$ for any $k$ (the white circle sits on the black cross); $\alpha = 0.25$, $k = 1$ (one step lands
exactly on task 1's optimum along $\theta_1$, so task 1 stops caring about $\theta_1$); $\alpha$ near $0.48$
(task 1 overshoots along $\theta_1$, $1 - 4\alpha \approx -1$, so its inner steps zig-zag and barely converge,
and MAML must care about it again). An $\alpha$ outside the stable range, passed to `quad.plot_landscape`
directly, draws a warning instead of the divergent points.
""")

code(r"""
# NBVAL_IGNORE_OUTPUT
lo, hi, step = quad.inner_lr_slider_range(tasks)
FigurePanel(
    lambda inner_lr, inner_steps: quad.plot_landscape(tasks, inner_lr, inner_steps),
    dict(inner_lr=FloatSlider(value=0.2, min=lo, max=hi, step=step, description="α (inner_lr)",
                              readout_format=".2f"),
         inner_steps=IntSlider(value=1, min=quad.INNER_STEPS_RANGE[0], max=quad.INNER_STEPS_RANGE[1],
                               description="k (inner_steps)")),
)
""")

md(r"""
If the sliders above do not respond (for example in a static rendering of this notebook), here is what they
show at three settings, drawn by the same function:
""")

code(r"""
fig = Figure(figsize=(15, 4.6), layout="constrained")
for ax, (inner_lr, inner_steps) in zip(fig.subplots(1, 3), [(0.0, 1), (0.2, 5), (0.48, 3)]):
    quad.plot_landscape(tasks, inner_lr, inner_steps, ax=ax, legend=False)
fig.suptitle("The MAML initialisation (white circle) moves with α and k; black cross: joint training; "
             "stars: task optima")
fig
""")

md(r"""
Left: with $\alpha = 0$ nothing adapts, and MAML *is* joint training. Middle: five steps of $\alpha = 0.2$
solve the steep tasks from almost anywhere, so $\theta^*$ moves next to the flat task 3, whose optimum is the
hardest to reach. Right: at $\alpha = 0.48$, close to the stability limit, task 1's steps along $\theta_1$
would overshoot back and forth ($1 - 4\alpha = -0.92$) and hardly shrink the error, so $\theta^*$ starts at
task 1's own $\theta_1$ and task 1 only has to move along $\theta_2$. The zig-zag you can see is task 2's,
along its steep $\theta_2$ ($1 - 3\alpha = -0.44$). The best initialisation depends on the inner loop it will
be used with.
""")

# --------------------------------------------------------------------------------------- network cost

md(r"""
## 5 · What the Hessian term costs on a network

Back to a real model: the MLP 784-256-5 of this series (`fomaml_utils.models.MLP`, about 200,000
parameters) on a 5-way 1-shot task, with 15 queries per class. The images are random: the costs below
depend only on tensor shapes. The inner loop is the series' `fomaml_utils.maml.adapt`; with
`first_order=False` it takes the inner gradients with `create_graph=True`, so the query loss can be
differentiated through the inner loop.
""")

code(r"""
from fomaml_utils.maml import adapt, task_loss
from fomaml_utils.memory import saved_tensor_bytes
from fomaml_utils.models import MLP

ways, shots, queries = 5, 1, 15
support_x = torch.randn(ways * shots, 1, 28, 28, generator=generator)
support_y = torch.arange(ways).repeat_interleave(shots)
query_x = torch.randn(ways * queries, 1, 28, 28, generator=generator)
query_y = torch.arange(ways).repeat_interleave(queries)
model = MLP(784, (256,), ways)
num_params = sum(p.numel() for p in model.parameters())
print(f"p = {num_params:,} parameters; a dense Hessian is p² float32 numbers = {num_params**2 * 4 / 1e9:.1f} GB")
""")

md(r"""
The dense Hessian is out of the question. First, check that the Hessian-vector-product form of line 5,
$(I - \alpha H_S(\theta))\,\nabla L_Q(\theta')$, is what autograd computes when it backpropagates through one
inner step (float64, so the two agree to round-off):
""")

code(r"""
model64 = MLP(784, (256,), ways).double()
params = {name: p.detach().requires_grad_(True) for name, p in model64.named_parameters()}
sx, qx, inner_lr = support_x.double(), query_x.double(), 0.4

# Autograd through the inner step (second order).
adapted = adapt(model64, params, sx, support_y, inner_lr=inner_lr, inner_steps=1, first_order=False)
exact = torch.autograd.grad(task_loss(model64, adapted, qx, query_y), list(params.values()))

# By hand: v = ∇L_Q(θ′), then one Hessian-vector product H_S(θ) v = ∇_θ (∇L_S(θ)ᵀ v).
frozen = {k: p.detach().requires_grad_(True) for k, p in adapted.items()}
v = torch.autograd.grad(task_loss(model64, frozen, qx, query_y), list(frozen.values()))
support_loss = task_loss(model64, params, sx, support_y)
support_grad = torch.autograd.grad(support_loss, list(params.values()), create_graph=True)
hvp = torch.autograd.grad(support_grad, list(params.values()), grad_outputs=v)
by_hand = [vi - inner_lr * hi for vi, hi in zip(v, hvp)]

error = max((e - b).abs().max().item() for e, b in zip(exact, by_hand))
assert error < 1e-10, error
def norm(tensors: list[torch.Tensor]) -> float:
    return torch.sqrt(sum((t**2).sum() for t in tensors)).item()

print("largest |autograd − (v − α·Hv)|: below 1e-10")
print(f"Hessian term next to the first-order term: ‖αHv‖ / ‖v‖ = {inner_lr * norm(hvp) / norm(v):.3f}")
""")

md(r"""
Line 5 is exactly what backpropagation through the inner loop computes, one Hessian-vector product per inner
step. The Hessian term is not negligible here: at this random initialisation, on random images and with
$\alpha = 0.4$, it is more than half as long as the first-order term. Whether a meta-gradient without it still
points the right way is a question for notebook 02.

**Memory.** `saved_tensor_bytes` counts the tensors autograd keeps alive for the backward pass (the peak
over the whole meta-gradient computation). It is exact and the same on every machine. With
`first_order=True` each inner gradient is a constant (its graph is freed straight away); with
`first_order=False` every inner step's graph is kept for the meta-backward.
""")

code(r"""
params = {name: p.detach().requires_grad_(True) for name, p in model.named_parameters()}

def meta_gradient_of_one_task(first_order: bool, inner_steps: int) -> list[torch.Tensor]:
    adapted = adapt(model, params, support_x, support_y, inner_lr=0.4, inner_steps=inner_steps,
                    first_order=first_order)
    return torch.autograd.grad(task_loss(model, adapted, query_x, query_y), list(params.values()))

steps = [0, 1, 5, 10, 20, 40]
saved = {(first_order, k): saved_tensor_bytes(meta_gradient_of_one_task, first_order, k)[1]
         for first_order in (True, False) for k in steps}
print(f"{'inner steps k':>14} | {'first order (MB)':>16} | {'second order (MB)':>17}")
for k in steps:
    print(f"{k:>14} | {saved[True, k] / 1e6:>16.1f} | {saved[False, k] / 1e6:>17.1f}")
per_step = (saved[False, 40] - saved[False, 20]) / 20
print(f"\nsecond order keeps {per_step / 1e3:.1f} kB more per inner step; first order keeps nothing more")
""")

md(r"""
First-order memory is flat in $k$: only the query pass's graph is alive at the end. Second-order memory
grows linearly, by the amount per inner step printed above. That is small here for a specific reason: the first
layer's weight matrix (784 × 256, 0.8 MB) is never saved, because its input, the image, needs no gradient. What each
step keeps is the support batch's hidden activations (5 × 256 numbers) and that step's copy of the output
layer (256 × 5 weights), plus a few small tensors. Per step the cost is one forward-and-backward's worth of
activations, so for a convolutional network on 20-way 5-shot tasks it is megabytes per step, and it is
multiplied by the meta-batch size.

The time cost, measured on this machine (the numbers change from run to run and from machine to machine):
""")

code(r"""
# NBVAL_IGNORE_OUTPUT
import timeit

for k in (1, 10):
    first = min(timeit.repeat(lambda: meta_gradient_of_one_task(True, k), number=1, repeat=5))
    second = min(timeit.repeat(lambda: meta_gradient_of_one_task(False, k), number=1, repeat=5))
    print(f"k = {k:2d}: first order {first * 1e3:6.1f} ms, second order {second * 1e3:6.1f} ms "
          f"per task ({second / first:.1f}×)")
""")

md(r"""
Each inner step of the second-order gradient does one more backward pass (the Hessian-vector product) than
the first-order one, so it takes longer, and the ratio printed above grows with $k$.

## What we saw, and what comes next

- Few-shot learning samples **tasks**; each has a support set to adapt on and a query set to judge the
  adaptation. MAML learns an **initialisation** $\theta$, because across tasks a shared starting point is
  useful where a shared model is not.
- The objective is **bilevel**: $\min_\theta \sum_i L_{Q_i}(\theta'_i)$ with $\theta'_i$ the result of $k$
  gradient steps on $L_{S_i}$ from $\theta$. With $\alpha = 0$ it is joint training.
- Its exact gradient is $(I - \alpha H_0)\cdots(I - \alpha H_{k-1})\,\nabla L_Q(\theta')$: the query gradient
  walked back through every inner step.
- On quadratic tasks everything is exact: the derived gradient matched autograd and finite differences, the
  closed-form optimum $(\sum_i M_i)^{-1}\sum_i M_i c_i$ matched gradient descent, and the optimum moved away
  from joint training towards the tasks the inner loop cannot fit quickly.
- On a network, the Hessian term costs one Hessian-vector product per inner step and keeps every inner
  step's graph alive, so memory grows linearly with $k$.

**Why dropping the Hessian term is tempting.** Line 6 splits the meta-gradient into the first-order term
$\nabla L_Q(\theta')$, which is just an ordinary gradient at the adapted weights, and the Hessian term
$-\alpha H_S\,\nabla L_Q(\theta')$, which carries all the cost. If we simply drop it, treating
$\partial\theta'/\partial\theta$ as $I$, memory no longer grows with $k$, no step needs a second backward pass,
and the code is an ordinary gradient computation. The Hessian term was not small on our network, so the
question is not whether the approximation changes the gradient (it does) but whether the meta-learning still
works. That is **first-order MAML (FOMAML)**. Notebook
`02_first_order_maml.ipynb` derives it and writes it from scratch, and measures when the approximation is good.

**References**

- Finn, C., Abbeel, P. and Levine, S. (2017). *Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks*. ICML 2017. (Section 5.2 introduces the first-order approximation.)
- Pearlmutter, B. A. (1994). *Fast Exact Multiplication by the Hessian*. Neural Computation 6(1), 147–160.
""")


if __name__ == "__main__":
    notebook.write(OUT)

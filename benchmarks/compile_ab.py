"""Would ``torch.compile`` make the ConvNet's meta-step fast enough? An A/B measurement, not part of the package.

Our per-task loop (``meta_gradient(implementation="loop")``) against the same per-task maths written with
``torch.func.grad`` and compiled as one function per task (Inductor; ``dynamic=False``), the two taking turns
in one process on the same batch: ``ConvNet(5)``, 5-way 1-shot, 15 queries per class, 16 tasks, α = 0.1,
2 threads (the protocol of ``python -m fomaml_utils.tools.bench``). Both report the query loss, as the loop
does (for Reptile that is an extra forward pass of the queries). Prints the compile time, the largest
relative difference of the meta-gradients, and tasks per second (median and range of the rounds)::

    .venv/bin/python benchmarks/compile_ab.py --algorithms fomaml,maml,reptile --steps 1,5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.func import functional_call, grad, grad_and_value
from torch.nn import functional as F

from fomaml_utils.algorithms import meta_gradient
from fomaml_utils.algorithms.models import ConvNet
from fomaml_utils.data import FewShotSampler
from fomaml_utils.seeding import seed_everything

TASKS, INNER_LR = 16, 0.1


def compiled_meta_gradient(model: torch.nn.Module, algorithm: str, inner_steps: int):
    """A function ``(params, batch) -> grads`` (the mean over tasks): one compiled call per task, which also
    computes the query loss as the loop does, and the tasks' gradients summed in Python."""

    def loss(p, x, y):
        return F.cross_entropy(functional_call(model, p, (x,)), y)

    def inner(p, sx, sy, first_order):
        for _ in range(inner_steps):
            g = grad(loss)(p, sx, sy)
            p = {k: p[k] - INNER_LR * (g[k].detach() if first_order else g[k]) for k in p}
        return p

    def one_task(p, sx, sy, qx, qy):
        if algorithm == "maml":
            return grad_and_value(lambda p0: loss(inner(p0, sx, sy, False), qx, qy))(p)
        adapted = inner(p, sx, sy, True)
        if algorithm == "fomaml":
            return grad_and_value(loss)(adapted, qx, qy)
        return {k: p[k] - adapted[k] for k in p}, loss(adapted, qx, qy)

    compiled = torch.compile(one_task, dynamic=False)

    def meta_grad(params, batch):
        total = None
        for task in zip(*batch):
            g, _ = compiled(params, *task)
            total = g if total is None else {k: total[k] + g[k] for k in g}
        return {k: v / len(batch.support_x) for k, v in total.items()}

    return meta_grad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithms", default="fomaml,maml,reptile")
    parser.add_argument("--steps", default="1,5")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--no-deterministic", action="store_true",
                        help="without torch.use_deterministic_algorithms (which the package's seeding turns on)")
    args = parser.parse_args()
    seed_everything(0, deterministic=not args.no_deterministic, threads=2)
    model = ConvNet(5)
    params = {k: p.detach() for k, p in model.named_parameters()}
    batch = FewShotSampler("unseen-digits", "train", 5, 1, 15, seed=0).sample(TASKS)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, ConvNet(5), {TASKS} tasks 5-way 1-shot, "
          f"deterministic algorithms {torch.are_deterministic_algorithms_enabled()}")
    for steps in map(int, args.steps.split(",")):
        for algorithm in args.algorithms.split(","):
            fast = compiled_meta_gradient(model, algorithm, steps)
            start = time.perf_counter()
            ours = fast(params, batch)
            compile_seconds = time.perf_counter() - start

            def loop():
                return meta_gradient(model, params, batch, algorithm=algorithm, inner_lr=INNER_LR,
                                     inner_steps=steps, implementation="loop").grads

            reference = loop()
            difference = max(((ours[k] - reference[k]).abs().max() / reference[k].abs().max()).item() for k in ours)
            rates = {"loop": [], "compiled": []}
            for _ in range(args.rounds):
                for name, fn in (("loop", loop), ("compiled", lambda: fast(params, batch))):
                    start = time.perf_counter()
                    fn()
                    rates[name].append(TASKS / (time.perf_counter() - start))
            text = ", ".join(f"{name} {statistics.median(r):.1f} ({min(r):.1f}–{max(r):.1f})"
                             for name, r in rates.items())
            ratio = statistics.median(rates["compiled"]) / statistics.median(rates["loop"])
            print(f"{algorithm:8} {steps} step(s): compile {compile_seconds:5.1f} s, max relative difference "
                  f"{difference:.1e}; tasks/s {text}; compiled/loop {ratio:.2f}", flush=True)


if __name__ == "__main__":
    main()

"""How fast does meta-training run? Tasks per second and peak memory of every meta-gradient path.

Run ``python -m fomaml_utils.tools.bench`` (or ``make bench``); ``--help`` lists the flags. Results of a full
run, with the machine and the date, are kept in ``benchmarks/RESULTS.md``.

Protocol: 5-way 1-shot tasks with 15 queries per class, meta-batch of 16 tasks, 1 and 5 inner steps,
``torch.set_num_threads(2)``, networks MLP 784-256-128-5 (``mlp2``), MLP 784-256-5 (``mlp``) and the
ConvNet (``cnn``). One *meta-step* is the meta-gradient of a batch plus an Adam step on θ. Every
implementation gets its own copy of the same initial network and the same pre-drawn batches; after a
warm-up, all (algorithm, implementation) pairs of a network and step count take turns, one timed
meta-step each per round (the order rotates every round), so that slow drift of the machine (other
processes, clock changes) hits all of them alike, and FOMAML and MAML are compared under the same
conditions. We
report the median tasks per second over the rounds and its spread (interquartile range and min–max).
Peak memory is measured afterwards, on one more meta-step, with ``fomaml_utils.companions.memory.peak_memory_bytes``
(the CPU allocator's peak above the start; an approximation, see there).

Implementations:

* ``auto``     — ours: ``meta_gradient(implementation="auto")``, the low-rank path for MLPs
  (``fomaml_utils.algorithms.mlp_lowrank``), the loop for other models;
* ``vmap``, ``loop`` — our other two paths of ``meta_gradient``;
* ``tutorial`` — the per-task loop most tutorials write: ``copy.deepcopy`` the network, take
  ``torch.optim.SGD`` steps on it, accumulate its query gradients. First order only (a deep copy
  cannot be differentiated through), so it has no MAML row;
* ``higher``   — Facebook's ``higher`` library (``innerloop_ctx``), when it is installed; otherwise
  skipped with a note;
* ``learn2learn`` — learn2learn 0.2.0's ``MAML`` wrapper (``fomaml_utils.tools.peer_learn2learn``: the installed
  package, or its three pure-Python files from the hash-checked source archive that ``make bench``
  downloads); FOMAML and MAML only, otherwise skipped with a note.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from fomaml_utils.algorithms.losses import output_loss
from fomaml_utils.algorithms.maml import meta_gradient, resolve_implementation
from fomaml_utils.algorithms.models import ARCHITECTURES, build_model
from fomaml_utils.algorithms.registry import ALGORITHMS, MetaGradient, get_algorithm
from fomaml_utils.companions.memory import peak_memory_bytes
from fomaml_utils.data.taskbatch import TaskBatch
from fomaml_utils.seeding import seed_everything
from fomaml_utils.tools.cli import check_writable_folder, non_negative_int, positive_float, positive_int, seed
from fomaml_utils.tools.cli import write_json_atomically

IMPLEMENTATIONS: tuple[str, ...] = ("auto", "vmap", "loop", "tutorial", "higher", "learn2learn")
PEERS: tuple[str, ...] = ("tutorial", "higher", "learn2learn")
"""The implementations that are not ours (benchmarked, never used by the package)."""
MODEL_NAMES = {"mlp2": "MLP 784-256-128-5", "mlp": "MLP 784-256-5", "cnn": "ConvNet 4×32"}
WAYS, SHOTS, QUERIES = 5, 1, 15


def _peers_serve(algorithm: str, model: nn.Module) -> bool:
    """Whether the peers implement ``algorithm``: plain SGD on every weight, nothing else learned."""
    names = [name for name, _ in model.named_parameters()]
    served = get_algorithm(algorithm)
    return served.plain_sgd and served.adapted_names(model, names) == names


MetaGradientFn = Callable[..., MetaGradient]


# --------------------------------------------------------------------------------------------------
# The two baselines from outside this package


def tutorial_meta_gradient(model: nn.Module, params: dict[str, torch.Tensor], batch: TaskBatch, *,
                           algorithm: str, inner_lr: float, inner_steps: int) -> MetaGradient:
    """The per-task loop of most tutorials: deep-copy the network, SGD on the copy, collect gradients.

    ``params`` must be ``dict(model.named_parameters())`` (the copy starts from the model's own weights).
    FOMAML: the query gradient of the adapted copy; Reptile: θ − θ′. MAML raises ``ValueError``.
    """
    if algorithm == "maml":
        raise ValueError("algorithm 'maml' needs second-order gradients, which deepcopy + SGD cannot give")
    total = {k: torch.zeros_like(p) for k, p in params.items()}
    losses, accuracies = [], []
    for sx, sy, qx, qy in zip(*batch):
        learner = copy.deepcopy(model)
        inner_optimizer = torch.optim.SGD(learner.parameters(), lr=inner_lr)
        for _ in range(inner_steps):
            inner_optimizer.zero_grad()
            output_loss(learner(sx), sy).backward()
            inner_optimizer.step()
        learner.zero_grad()
        out = learner(qx)
        loss = output_loss(out, qy)
        if algorithm == "fomaml":
            loss.backward()
        for (k, p), (_, q) in zip(params.items(), learner.named_parameters()):
            total[k] += q.grad if algorithm == "fomaml" else (p - q).detach()
        losses.append(loss.detach())
        accuracies.append((out.argmax(-1) == qy).float().mean())
    n = len(losses)
    return MetaGradient({k: g / n for k, g in total.items()}, torch.stack(losses).mean(), torch.stack(accuracies).mean())


def higher_meta_gradient(model: nn.Module, params: dict[str, torch.Tensor], batch: TaskBatch, *,
                         algorithm: str, inner_lr: float, inner_steps: int) -> MetaGradient:
    """The same three meta-gradients written with ``higher.innerloop_ctx`` (``pip install higher``).

    ``params`` must be ``dict(model.named_parameters())``. MAML tracks higher-order gradients through the
    differentiable optimiser; FOMAML and Reptile do not (``track_higher_grads=False``).
    """
    import higher  # optional; ImportError tells the caller it is not installed

    names, thetas = list(params), list(params.values())
    total = {k: torch.zeros_like(p) for k, p in params.items()}
    losses, accuracies = [], []
    inner_optimizer = torch.optim.SGD(model.parameters(), lr=inner_lr)
    for sx, sy, qx, qy in zip(*batch):
        with higher.innerloop_ctx(model, inner_optimizer, copy_initial_weights=False,
                                  track_higher_grads=algorithm == "maml") as (fmodel, diffopt):
            for _ in range(inner_steps):
                diffopt.step(output_loss(fmodel(sx), sy))
            out = fmodel(qx)
            loss = output_loss(out, qy)
            adapted = list(fmodel.parameters())
            if algorithm == "maml":
                grads = torch.autograd.grad(loss, thetas)
            elif algorithm == "fomaml":
                grads = torch.autograd.grad(loss, adapted)
            else:
                grads = [(p - q).detach() for p, q in zip(thetas, adapted)]
        for k, g in zip(names, grads):
            total[k] += g
        losses.append(loss.detach())
        accuracies.append((out.argmax(-1) == qy).float().mean())
    n = len(losses)
    return MetaGradient({k: g / n for k, g in total.items()}, torch.stack(losses).mean(), torch.stack(accuracies).mean())


def _ours(implementation: str) -> MetaGradientFn:
    def fn(model, params, batch, **kwargs):
        return meta_gradient(model, params, batch, implementation=implementation, **kwargs)
    return fn


def implementation_fn(name: str) -> MetaGradientFn:
    """The meta-gradient function benchmarked under ``name`` (one of ``IMPLEMENTATIONS``)."""
    if name in ("auto", "vmap", "loop", "lowrank"):
        return _ours(name)
    if name == "tutorial":
        return tutorial_meta_gradient
    if name == "higher":
        return higher_meta_gradient
    if name == "learn2learn":
        from fomaml_utils.tools.peer_learn2learn import learn2learn_meta_gradient
        return learn2learn_meta_gradient
    raise ValueError(f"implementation must be one of {', '.join(IMPLEMENTATIONS)}, got {name!r}")


def learn2learn_available() -> bool:
    from fomaml_utils.tools.peer_learn2learn import load_learn2learn
    try:
        load_learn2learn()
    except (FileNotFoundError, ValueError):
        return False
    return True


def higher_available() -> bool:
    try:
        import higher  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------------------------------
# Tasks, machine, timing


def draw_batches(count: int, meta_batch_size: int, seed: int, data: str = "auto") -> tuple[list[TaskBatch], str]:
    """``count`` batches of 5-way 1-shot tasks with 15 queries, and a description of where they came from.

    ``data="mnist"``: real MNIST tasks from ``FewShotSampler``; ``"random"``: random-normal images (the
    timing does not depend on the pixels); ``"auto"``: MNIST if the sampler and the data are there.
    """
    reason = "--data random"
    if data != "random":
        try:
            from fomaml_utils.data.tasks import FewShotSampler

            sampler = FewShotSampler("unseen-digits", "train", WAYS, SHOTS, QUERIES, seed=seed)
            return [sampler.sample(meta_batch_size) for _ in range(count)], "MNIST tasks (FewShotSampler)"
        except Exception as error:  # no sampler module or no data: the protocol allows random images
            if data == "mnist":
                raise
            reason = f"MNIST sampler unavailable: {type(error).__name__}"
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        labels = lambda k: torch.arange(WAYS).repeat_interleave(k).repeat(meta_batch_size, 1)
        batches.append(TaskBatch(torch.randn(meta_batch_size, WAYS * SHOTS, 1, 28, 28, generator=g), labels(SHOTS),
                                 torch.randn(meta_batch_size, WAYS * QUERIES, 1, 28, 28, generator=g), labels(QUERIES)))
    return batches, f"random-normal images ({reason})"


def machine_description() -> dict:
    """CPU model, logical cores, torch version, threads, load average and the date (UTC)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "load_average": _load_average(),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
    }


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


class Runner:
    """One implementation's own network copy, Adam optimiser and meta-step."""

    def __init__(self, name: str, model: nn.Module, algorithm: str, inner_lr: float, inner_steps: int,
                 clock: Callable[[], float] = time.perf_counter, device: torch.device | str = "cpu"):
        self.name, self.clock, self.device = name, clock, torch.device(device)
        self.fn = implementation_fn(name)
        self.model = copy.deepcopy(model).to(self.device)
        self.params = dict(self.model.named_parameters())
        self.meta_state = get_algorithm(algorithm).init_meta_state(self.params, inner_lr)
        self.optimizer = torch.optim.Adam([*self.params.values(), *self.meta_state.values()], lr=1e-3)
        self.kwargs = dict(algorithm=algorithm, inner_lr=inner_lr, inner_steps=inner_steps)
        if self.meta_state:  # only our implementations serve algorithms with a meta-state
            self.kwargs["meta_state"] = self.meta_state
        self.times: list[float] = []

    def meta_step(self, batch: TaskBatch) -> MetaGradient:
        out = self.fn(self.model, self.params, batch, **self.kwargs)
        for k, p in self.params.items():
            p.grad = out.grads[k]
        for k, state in self.meta_state.items():
            state.grad = out.meta_state_grads[k]
        self.optimizer.step()
        return out

    def timed_meta_step(self, batch: TaskBatch) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # time the meta-step's kernels, not just their launch
        start = self.clock()
        self.meta_step(batch)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.times.append(self.clock() - start)


def summarize(times: Sequence[float], num_tasks: int) -> dict:
    """Median tasks/s over the timed meta-steps, with quartiles and extremes (also in tasks/s)."""
    rates = sorted(num_tasks / t for t in times)
    q1, _, q3 = statistics.quantiles(rates, n=4, method="inclusive") if len(rates) > 1 else (rates[0],) * 3
    return {"tasks_per_second": statistics.median(rates), "q1": q1, "q3": q3, "min": rates[0], "max": rates[-1],
            "timed_meta_steps": len(rates)}


def run_case(model_name: str, inner_steps: int, algorithms: Sequence[str], implementations: Sequence[str],
             batches: Sequence[TaskBatch], *, warmup: int, repeats: int, inner_lr: float, seed: int,
             measure_memory: bool, clock: Callable[[], float] = time.perf_counter,
             device: torch.device | str = "cpu") -> list[dict]:
    """Benchmark every (algorithm, implementation) pair on one network and step count, taking turns, so
    that FOMAML and MAML are compared under the same conditions too; one result row per pair. ``device``:
    where the networks and batches live (``"cpu"`` or a CUDA device)."""
    batches = [batch.to(device) for batch in batches]
    seed_everything(seed, deterministic=False)
    model = build_model(model_name, WAYS)
    rows, runners = [], []
    for algorithm in algorithms:
        resolved = resolve_implementation(model, "auto", algorithm)
        for name in implementations:
            row = {"model": model_name, "algorithm": algorithm, "inner_steps": inner_steps, "implementation": name,
                   "tasks_per_second": None, "note": f"ours, auto → {resolved}" if name == "auto" else ""}
            if name == resolved and "auto" in implementations:
                row["note"] = "same path as auto (not timed twice)"
            elif name in PEERS and not _peers_serve(algorithm, model):
                row["note"] = "peers are run for " + ", ".join(a for a in ALGORITHMS if _peers_serve(a, model))
            elif name == "tutorial" and algorithm == "maml":
                row["note"] = "first order only (deepcopy + SGD)"
            elif name == "higher" and not higher_available():
                row["note"] = "not installed (pip install higher)"
            elif name == "learn2learn" and algorithm == "reptile":
                row["note"] = "no Reptile in learn2learn's MAML wrapper"
            elif name == "learn2learn" and not learn2learn_available():
                row["note"] = "not available (python -m fomaml_utils.tools.peer_learn2learn)"
            else:
                runners.append((row, Runner(name, model, algorithm, inner_lr, inner_steps, clock, device)))
            rows.append(row)

    for _, runner in runners:
        for i in range(warmup):
            runner.meta_step(batches[i % len(batches)])
    for r in range(repeats):
        turn = r % len(runners) if runners else 0
        for _, runner in runners[turn:] + runners[:turn]:
            runner.timed_meta_step(batches[r % len(batches)])

    for row, runner in runners:
        row.update(summarize(runner.times, batches[0].num_tasks))
        if measure_memory:
            _, peak = peak_memory_bytes(runner.meta_step, batches[0], device=device)
            row["peak_memory_bytes"] = peak
    return rows


# --------------------------------------------------------------------------------------------------
# Command line


def _comma_list(allowed: Sequence[str] | None, convert: Callable = str) -> Callable[[str], list]:
    def parse(text: str) -> list:
        items = [convert(x) for x in text.split(",") if x.strip()]
        if not items:
            raise argparse.ArgumentTypeError("expected a comma-separated list")
        if allowed is not None and any(x not in allowed for x in items):
            raise argparse.ArgumentTypeError(f"choose from {','.join(allowed)}, got {text!r}")
        return items
    parse.__name__ = "comma-separated list"  # argparse's "invalid ... value" names it
    return parse


def _steps(text: str) -> list[int]:
    """Inner step counts, comma-separated, each >= 1 (with 0 steps there is no adaptation to time)."""
    steps = _comma_list(None, int)(text)
    if any(s < 1 for s in steps):
        raise argparse.ArgumentTypeError(f"inner steps must be integers >= 1, got {text!r}")
    return steps


_steps.__name__ = "list of inner steps"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fomaml_utils.tools.bench",
                                     description="Tasks per second and peak memory of the meta-gradient paths.")
    parser.add_argument("--quick", action="store_true", help="1 warm-up and 3 timed meta-steps: a smoke test")
    parser.add_argument("--models", type=_comma_list(ARCHITECTURES), default=["mlp2", "mlp", "cnn"],
                        help="comma-separated, from mlp2 (784-256-128-5), mlp (784-256-5), cnn")
    parser.add_argument("--steps", type=_steps, default=[1, 5], help="inner steps, comma-separated (default 1,5)")
    parser.add_argument("--algorithms", type=_comma_list(ALGORITHMS), default=list(ALGORITHMS))
    parser.add_argument("--implementations", type=_comma_list(IMPLEMENTATIONS), default=list(IMPLEMENTATIONS))
    parser.add_argument("--repeats", type=positive_int, default=20, help="timed meta-steps per implementation")
    parser.add_argument("--warmup", type=non_negative_int, default=3, help="untimed meta-steps first (default 3)")
    parser.add_argument("--meta-batch-size", type=positive_int, default=16)
    parser.add_argument("--threads", type=positive_int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--inner-lr", type=positive_float, default=0.4, help="inner step size, a finite number > 0")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="time meta-steps by the wall clock (default) or by the process's CPU time, which "
                             "other processes on a shared machine disturb far less (use with --threads 1)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    parser.add_argument("--data", choices=("auto", "mnist", "random"), default="auto",
                        help="MNIST tasks, random-normal images, or MNIST when available (default)")
    parser.add_argument("--seed", type=seed, default=0, help="0 to 2**64 - 1 (default 0)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results as JSON")
    return parser


def format_table(rows: Sequence[dict]) -> str:
    """The results as a fixed-width text table, one line per (network, steps, algorithm, implementation)."""
    header = f"{'network':<18} {'steps':>5} {'algorithm':<10} {'implementation':<15} {'tasks/s':>8} " \
             f"{'IQR':>13} {'min–max':>13} {'peak MiB':>8}  note"
    lines = [header, "-" * len(header)]
    for row in rows:
        rate = row["tasks_per_second"]
        if rate is None:
            numbers = f"{'—':>8} {'':>13} {'':>13} {'':>8}"
        else:
            memory = row.get("peak_memory_bytes")
            memory = f"{memory / 2**20:8.1f}" if memory is not None else f"{'':>8}"
            numbers = (f"{rate:8.0f} {row['q1']:6.0f}–{row['q3']:<6.0f} {row['min']:6.0f}–{row['max']:<6.0f} "
                       f"{memory}")
        lines.append(f"{MODEL_NAMES[row['model']]:<18} {row['inner_steps']:>5} {row['algorithm']:<10} "
                     f"{row['implementation']:<15} {numbers}  {row['note']}")
    return "\n".join(lines)


def headline(rows: Sequence[dict]) -> list[str]:
    """Ours (``auto``) for FOMAML against our own second-order MAML, per network and step count."""
    def rate(model, steps, algorithm):
        return next((r["tasks_per_second"] for r in rows if (r["model"], r["inner_steps"], r["algorithm"],
                     r["implementation"]) == (model, steps, algorithm, "auto")), None)
    lines = []
    for model, steps in dict.fromkeys((r["model"], r["inner_steps"]) for r in rows):
        fomaml, maml = rate(model, steps, "fomaml"), rate(model, steps, "maml")
        if fomaml and maml:
            lines.append(f"{MODEL_NAMES[model]}, {steps} inner steps: ours FOMAML {fomaml:.0f} tasks/s, "
                         f"{fomaml / maml:.2f}× our second-order MAML ({maml:.0f} tasks/s)")
    return lines


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the benchmark, print the machine and the table; returns ``{"machine", "protocol", "results"}``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.json is not None:  # checked before the benchmark runs, not after
        if args.json.is_dir():
            parser.error(f"--json {str(args.json)!r} is a folder; give a file name")
        try:
            check_writable_folder(args.json.parent, "--json")
        except ValueError as error:
            parser.error(str(error))
    warmup, repeats = (1, 3) if args.quick else (args.warmup, args.repeats)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        batches, data = draw_batches(4, args.meta_batch_size, args.seed, args.data)
        machine = machine_description()
        protocol = {"ways": WAYS, "shots": SHOTS, "queries": QUERIES, "meta_batch_size": args.meta_batch_size,
                    "inner_lr": args.inner_lr, "warmup": warmup, "timed_meta_steps": repeats, "data": data,
                    "meta_step": "meta-gradient + Adam step", "clock": args.clock}
        print(f"CPU: {machine['cpu']} ({machine['logical_cores']} logical cores), torch {machine['torch']}, "
              f"{machine['threads']} threads, load average {machine['load_average']}, {machine['date_utc']} UTC")
        print(f"{WAYS}-way {SHOTS}-shot, {QUERIES} queries per class, {args.meta_batch_size} tasks per meta-step, "
              f"{data}; {warmup} warm-up and {repeats} timed meta-steps per implementation, taking turns; "
              f"{args.clock}-clock time")
        if "higher" in args.implementations and not higher_available():
            print("note: the higher library is not installed; its rows are skipped")
        if "learn2learn" in args.implementations and not learn2learn_available():
            print("note: learn2learn is not available; its rows are skipped "
                  "(python -m fomaml_utils.tools.peer_learn2learn downloads its source archive)")
        rows = []
        for model_name in args.models:
            for inner_steps in args.steps:
                print(f"running {MODEL_NAMES[model_name]}, {inner_steps} inner steps ...", file=sys.stderr,
                      flush=True)
                rows += run_case(model_name, inner_steps, args.algorithms, args.implementations, batches,
                                 warmup=warmup, repeats=repeats, inner_lr=args.inner_lr, seed=args.seed,
                                 measure_memory=not args.no_memory,
                                 clock=time.process_time if args.clock == "cpu" else time.perf_counter)
        machine["load_average_end"] = _load_average()
        print(format_table(rows))
        for line in headline(rows):
            print(line)
        report = {"machine": machine, "protocol": protocol, "results": rows}
        if args.json is not None:
            write_json_atomically(args.json, report)
        return report
    finally:
        torch.set_num_threads(threads_before)


if __name__ == "__main__":
    main()

r"""Numeric settings that change float results the way another CPU would, and a probe that shows they do.

Two CPUs running the same code on the same data round differently in the last bits: the math libraries pick
other kernels for other vendors and instruction sets. Meta-training amplifies such differences, so the
series' stored notebook outputs must hold under them (figures from training are checked with a tolerance,
see ``fomaml_utils.companions.approx``). On one machine the same kind of difference is produced by environment
variables that must be set before torch is imported:

- ``ATEN_CPU_CAPABILITY=default``: torch's own kernels without vector instructions;
- ``MKL_CBWR=COMPATIBLE``: Intel MKL's matrix products in their CPU-independent variant.

``python -m fomaml_utils.tools.portability`` prints, under each setting, a hash of the weights after a short
FOMAML run on sinusoid tasks. ``--notebooks`` then runs nbval over ``notebooks/`` under each setting that
gave new bits, but the machine's own (which plain ``pytest`` covers): ``make portability``, part of
``make test``. A setting that gives the same bits as an earlier one would only repeat its run and is skipped,
with a note: on an ARM CPU, or with a torch built without MKL, ``MKL_CBWR`` changes nothing. On an x86-64 CPU
with MKL, where both variables are known to change the bits, the same hash twice is an error instead: the
check would otherwise stop proving anything without a word. ``--probe`` runs the probe alone, in this
process, under whatever setting is in force.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys

SETTINGS: dict[str, dict[str, str]] = {
    "as installed": {},
    "ATEN_CPU_CAPABILITY=default": {"ATEN_CPU_CAPABILITY": "default"},
    "MKL_CBWR=COMPATIBLE": {"MKL_CBWR": "COMPATIBLE"},
}
"""Name → environment variables to set. The first is the machine's own setting."""

NUMERIC_VARIABLES = ("ATEN_CPU_CAPABILITY", "MKL_CBWR")
"""The variables a setting may set; the others are removed from its environment."""


def probe_hash(iterations: int = 200) -> str:
    """The first 16 hex digits of the SHA-256 of a 1-40-40-1 MLP's weights after ``iterations`` FOMAML steps.

    Sinusoid tasks (K = 10, 10 queries, 25 per meta-batch), α = 0.01, one inner step, Adam with β = 0.003,
    one thread, seed 0: deterministic on one machine and setting, different bits elsewhere.
    """
    from fomaml_utils.algorithms.models import MLP
    from fomaml_utils.seeding import seed_everything
    from fomaml_utils.companions.sinusoid import SinusoidSampler
    from fomaml_utils.training.loop import meta_train

    seed_everything(0, threads=1)
    model = MLP(1, (40, 40), 1)
    meta_train(model, SinusoidSampler(10, 10, seed=0), algorithm="fomaml", inner_lr=0.01, meta_lr=0.003,
               inner_steps=1, meta_batch_size=25, iterations=iterations, progress=False)
    digest = hashlib.sha256()
    for name, weight in model.state_dict().items():
        digest.update(name.encode())
        digest.update(weight.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def setting_environment(setting: str) -> dict[str, str]:
    """This process's environment with the numeric variables replaced by those of ``setting``."""
    env = {k: v for k, v in os.environ.items() if k not in NUMERIC_VARIABLES}
    env.update(SETTINGS[setting])
    return env


def probe_all() -> dict[str, str]:
    """``{setting: probe hash}``, each probe in a fresh interpreter (the variables act when torch is imported)."""
    hashes = {}
    for setting in SETTINGS:
        result = subprocess.run([sys.executable, "-m", "fomaml_utils.tools.portability", "--probe"],
                                env=setting_environment(setting), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"the probe failed under {setting}:\n{result.stderr}")
        hashes[setting] = result.stdout.strip()
    return hashes


def settings_must_differ() -> bool:
    """Whether every setting is known to change the bits here: an x86-64 CPU and a torch with MKL."""
    import platform

    import torch

    return platform.machine().lower() in ("x86_64", "amd64") and torch.backends.mkl.is_available()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fomaml_utils.tools.portability",
        description="Show that each numeric setting of the portability check changes float results: a hash of "
                    "the weights after a short FOMAML run under each. Exits 1 if two settings agree.")
    parser.add_argument("--probe", action="store_true", help="print the hash under the current setting only")
    parser.add_argument("--notebooks", action="store_true",
                        help="then run nbval over notebooks/ under each setting but the machine's own")
    args = parser.parse_args(argv)
    if args.probe:
        print(probe_hash())
        return 0
    hashes = probe_all()
    distinct: dict[str, str] = {}  # hash -> the first setting that gave it
    for setting, digest in hashes.items():
        same = f" (the same bits as {distinct[digest]})" if digest in distinct else ""
        print(f"probe under {setting:28} weights {digest}{same}", flush=True)
        distinct.setdefault(digest, setting)
    if len(distinct) == len(hashes):
        print(f"all {len(hashes)} settings change the float results", flush=True)
    elif settings_must_differ():
        print("On an x86-64 CPU with MKL every setting should change the float results, and here some do not: "
              "the portability check would prove less than it claims. Check that ATEN_CPU_CAPABILITY and MKL_CBWR "
              "reach torch (they act when it is imported), or choose other settings in "
              "fomaml_utils/tools/portability.py.")
        return 1
    else:
        print("Some settings give the same bits on this machine (no MKL, or not an x86-64 CPU): their notebook "
              "runs would repeat an earlier one and are skipped.", flush=True)
    if not args.notebooks:
        return 0
    failed = []
    for setting in list(distinct.values())[1:]:
        print(f"\nnbval over notebooks/ under {setting}", flush=True)
        result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "notebooks"],
                                env=setting_environment(setting), check=False)
        if result.returncode != 0:
            failed.append(setting)
    if failed:
        print(f"the notebooks fail under: {', '.join(failed)}")
        return 1
    print(f"the notebooks pass under {', '.join(list(distinct.values())[1:]) or 'no other setting'} "
          f"(under the machine's own setting, plain pytest checks them)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

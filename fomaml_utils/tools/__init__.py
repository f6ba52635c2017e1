"""Command-line tools, each run as ``python -m fomaml_utils.tools.NAME`` (import each by module).

- ``train``: meta-train and meta-test on few-shot MNIST; writes the checkpoint and its metrics.
- ``bench``: tasks per second and peak memory of every meta-gradient path.
- ``course``: the course assignments: release the student versions, grade submissions (nbgrader).
- ``portability``: numeric settings that change float results as another CPU would, and nbval under them.
- ``peer_learn2learn``: learn2learn's MAML wrapper, from its hash-checked source archive, for ``bench``.
- ``cli``: what the command lines share: argparse number checkers and atomic output files.
"""

__all__: list[str] = []

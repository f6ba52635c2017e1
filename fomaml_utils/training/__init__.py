"""Training and evaluation layer: meta-training, meta-testing, checkpoints and the transfer baseline.

- ``loop``: ``meta_train``, the meta-training loop, and its ``History``.
- ``evaluation``: ``evaluate`` adapts to many new tasks and reports the query score after every step.
- ``checkpoints``: save a meta-learned initialisation with what produced it, load it back safely.
- ``baselines``: pretrain on the meta-training classes, then a fresh output layer per task.
"""

from fomaml_utils.training.baselines import pretrain, with_fresh_head
from fomaml_utils.training.checkpoints import load_checkpoint, save_checkpoint
from fomaml_utils.training.evaluation import Evaluation, evaluate, mean_confidence_interval
from fomaml_utils.training.loop import DivergenceError, History, meta_train

__all__ = [
    "meta_train", "History", "DivergenceError",
    "evaluate", "Evaluation", "mean_confidence_interval",
    "save_checkpoint", "load_checkpoint",
    "pretrain", "with_fresh_head",
]

"""Algorithms layer: the models, the loss, and MAML, FOMAML, Reptile, ANIL and Meta-SGD.

- ``registry``: one class per algorithm, the registry of their names, and the inner loop they share.
- ``losses``: the one loss rule, and per-task loss and accuracy.
- ``models``: ``MLP`` and ``ConvNet``, usable as modules and as pure functions of a parameter dict.
- ``maml``: ``adapt`` (the inner loop) and ``meta_gradient`` (loop, vmap and low-rank implementations).
- ``mlp_lowrank``: the fast meta-gradient for MLPs, every inner step a low-rank update.
"""

# registry, losses and models before maml and mlp_lowrank, which import them by module path (never from here).
from fomaml_utils.algorithms.losses import output_loss, query_output, task_accuracy, task_loss
from fomaml_utils.algorithms.models import ARCHITECTURES, MLP, NORMS, ConvNet, build_model, head_name
from fomaml_utils.algorithms.registry import (ALGORITHMS, ANIL, FOMAML, MAML, REGISTRY, Algorithm, FirstOrderANIL,
                                              FirstOrderMetaSGD, MetaGradient, MetaSGD, Params, Reptile,
                                              check_hyperparameters, check_meta_state, functional_inner_step,
                                              get_algorithm, inner_loop, register)
from fomaml_utils.algorithms.maml import IMPLEMENTATIONS, adapt, meta_gradient, resolve_implementation
from fomaml_utils.algorithms.mlp_lowrank import lowrank_meta_gradient

__all__ = [
    # registry
    "Algorithm", "FOMAML", "MAML", "Reptile", "ANIL", "FirstOrderANIL", "MetaSGD", "FirstOrderMetaSGD",
    "ALGORITHMS", "REGISTRY", "register", "get_algorithm", "MetaGradient", "Params", "check_hyperparameters",
    "check_meta_state", "inner_loop", "functional_inner_step",
    # losses
    "task_loss", "task_accuracy", "output_loss", "query_output",
    # models
    "MLP", "ConvNet", "build_model", "head_name", "ARCHITECTURES", "NORMS",
    # maml
    "adapt", "meta_gradient", "resolve_implementation", "IMPLEMENTATIONS",
    # mlp_lowrank
    "lowrank_meta_gradient",
]

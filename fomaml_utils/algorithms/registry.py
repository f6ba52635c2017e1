r"""The meta-learning algorithms of the series, one class each, and the one inner loop they share.

Every algorithm here adapts a copy of the meta-parameters θ to a task with ``k`` gradient steps on the
task's support loss :math:`L_S`, and is judged by the query loss :math:`L_Q` at the adapted weights θ′.
What tells them apart is said by four things, all on the class:

* **which weights adapt** (``adapted_names``): all of them, or (ANIL) only the output layer;
* **how an inner step is taken** (``inner_step``): θ′ ← θ′ − α g with one step size α, or (Meta-SGD)
  θ′ ← θ′ − α ⊙ g with a learned step size per weight;
* **what meta-state it learns besides θ** (``init_meta_state``): nothing, or Meta-SGD's α;
* **what its meta-gradient is** (``first_order`` and ``kind``): the exact gradient of
  :math:`L_Q(\theta'(\theta))` (backpropagated through the inner loop), its first-order approximation
  (every inner gradient taken as a constant, so the query gradient at θ′ reaches θ unchanged), or
  Reptile's direction θ − θ′.

The algorithms (``ALGORITHMS`` lists their names):

=============  =================================================================================
``fomaml``     first-order MAML (Finn et al., 2017, "Model-Agnostic Meta-Learning for Fast
               Adaptation of Deep Networks"): :math:`\nabla L_Q(\theta')` applied to θ.
``maml``       MAML's exact second-order gradient.
``reptile``    Reptile (Nichol et al., 2018, "On First-Order Meta-Learning Algorithms"): θ − θ′.
``anil``       ANIL (Raghu et al., 2020, "Rapid Learning or Feature Reuse? Towards Understanding the
               Effectiveness of MAML"): only the output layer adapts; exact gradient.
``fo-anil``    ANIL, first order.
``metasgd``    Meta-SGD (Li et al., 2017, "Meta-SGD: Learning to Learn Quickly for Few-Shot
               Learning"): a learned step size for every weight, meta-trained with θ; exact gradient.
``fo-metasgd`` Meta-SGD, first order.
=============  =================================================================================

Adding an algorithm means writing one subclass of ``Algorithm`` with ``@register`` above it; the loop and
``vmap`` implementations of ``fomaml_utils.algorithms.maml.meta_gradient``, evaluation, the trainer, the command line
and the parametrised tests all read it from here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import ClassVar, Literal, NamedTuple

import torch
from torch import nn

from fomaml_utils.algorithms.losses import task_loss
from fomaml_utils.algorithms.models import head_name

Params = dict[str, torch.Tensor]

__all__ = [
    "Algorithm", "FOMAML", "MAML", "Reptile", "ANIL", "FirstOrderANIL", "MetaSGD", "FirstOrderMetaSGD",
    "ALGORITHMS", "REGISTRY", "register", "get_algorithm", "MetaGradient", "Params", "check_hyperparameters",
    "check_meta_state", "inner_loop", "functional_inner_step",
]


class MetaGradient(NamedTuple):
    """What one meta-step computes for a batch of tasks.

    grads:            same keys and shapes as ``params``; the mean over tasks of the algorithm's
                      meta-gradient (for Reptile, the mean of θ − θ′).
    query_loss:       scalar tensor, mean over tasks of the query loss at the adapted weights θ′ (detached).
    query_accuracy:   scalar tensor, mean query accuracy at θ′ for classification, else ``None``.
    meta_state_grads: same keys and shapes as the algorithm's meta-state (Meta-SGD's step sizes); empty
                      for algorithms that learn nothing besides θ.
    """

    grads: Params
    query_loss: torch.Tensor
    query_accuracy: torch.Tensor | None
    meta_state_grads: Mapping[str, torch.Tensor] = {}


class Algorithm:
    """MAML's family: ``inner_steps`` steps θ′ ← θ′ − α∇L_S(θ′) on every weight, then a meta-gradient.

    Subclasses override what differs. Instances hold no state of their own (the meta-state is a dict the
    caller keeps, like θ), so the one instance in ``REGISTRY`` serves every model.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    """How the algorithm is written in prose and tables: ``"FOMAML"``, ``"ANIL (first order)"``."""
    summary: ClassVar[str]
    """One sentence for the command line's help."""
    first_order: ClassVar[bool] = True
    """True: the inner gradients are constants for the meta-gradient (no second derivatives)."""
    kind: ClassVar[Literal["query-gradient", "reptile"]] = "query-gradient"
    """``"query-gradient"``: the gradient of the query loss at θ′ with respect to θ (and the meta-state);
    ``"reptile"``: the direction θ − θ′."""

    def adapted_names(self, model: nn.Module, names: Iterable[str]) -> list[str]:
        """The names among ``names`` (parameters of ``model``) that the inner loop changes: all of them."""
        return list(names)

    def init_meta_state(self, params: Mapping[str, torch.Tensor], inner_lr: float) -> Params:
        """The meta-learned state besides θ, at its starting value: nothing (an empty dict)."""
        return {}

    def inner_step(self, name: str, weight: torch.Tensor, grad: torch.Tensor, meta_state: Mapping[str, torch.Tensor],
                   inner_lr: float) -> torch.Tensor:
        """One inner SGD step on the weight ``name``: ``weight − inner_lr · grad`` (same shape)."""
        return weight - inner_lr * grad

    @property
    def plain_sgd(self) -> bool:
        """Whether the inner loop takes plain SGD steps with one step size (on every weight, or on the top
        layers) and nothing else is learned: what ``fomaml_utils.algorithms.mlp_lowrank`` (the fast MLP
        implementation) serves."""
        return True

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


REGISTRY: dict[str, Algorithm] = {}
"""Name → the algorithm's instance, in the order they were registered."""


def register(cls: type[Algorithm]) -> type[Algorithm]:
    """Class decorator: put one instance of ``cls`` in ``REGISTRY`` under ``cls.name``."""
    if cls.name in REGISTRY:
        raise ValueError(f"an algorithm named {cls.name!r} is registered already")
    REGISTRY[cls.name] = cls()
    return cls


@register
class FOMAML(Algorithm):
    name = "fomaml"
    title = "FOMAML"
    summary = "first-order MAML: the query-loss gradient at the adapted weights, applied to the initial weights"


@register
class MAML(Algorithm):
    name = "maml"
    title = "MAML"
    summary = "second-order MAML: the exact gradient, differentiated through the inner loop"
    first_order = False


@register
class Reptile(Algorithm):
    name = "reptile"
    title = "Reptile"
    summary = "moves the initialisation towards the adapted weights (direction θ − θ′; no query set)"
    kind = "reptile"


@register
class ANIL(Algorithm):
    """Almost No Inner Loop: the inner loop adapts the output layer only; the layers below are
    meta-learned but fixed within a task, so a task is solved by reusing the features."""

    name = "anil"
    title = "ANIL"
    summary = "only the output layer adapts in the inner loop; exact gradient"
    first_order = False

    def adapted_names(self, model: nn.Module, names: Iterable[str]) -> list[str]:
        head = head_name(model) + "."
        adapted = [k for k in names if k.startswith(head)]
        if not adapted:
            raise ValueError(f"{self.name}: params hold no weight of the output layer {head_name(model)!r}")
        return adapted


@register
class FirstOrderANIL(ANIL):
    name = "fo-anil"
    title = "ANIL (first order)"
    summary = "only the output layer adapts in the inner loop; first-order gradient"
    first_order = True


@register
class MetaSGD(Algorithm):
    """A step size for every weight, ``α`` with the shapes of θ, meta-learned with θ. It starts at
    ``inner_lr`` everywhere, so the first meta-step is MAML's; the inner step is θ′ ← θ′ − α ⊙ g."""

    name = "metasgd"
    title = "Meta-SGD"
    summary = "learns a step size for every weight along with the initialisation; exact gradient"
    first_order = False

    def init_meta_state(self, params: Mapping[str, torch.Tensor], inner_lr: float) -> Params:
        """``{name: α [shape of θ[name]]}``, every entry ``inner_lr``, a leaf ready for an optimiser."""
        return {k: torch.full_like(p.detach(), float(inner_lr)).requires_grad_(True) for k, p in params.items()}

    def inner_step(self, name: str, weight: torch.Tensor, grad: torch.Tensor, meta_state: Mapping[str, torch.Tensor],
                   inner_lr: float) -> torch.Tensor:
        return weight - meta_state[name] * grad

    @property
    def plain_sgd(self) -> bool:
        return False


@register
class FirstOrderMetaSGD(MetaSGD):
    name = "fo-metasgd"
    title = "Meta-SGD (first order)"
    summary = "learns a step size for every weight along with the initialisation; first-order gradient"
    first_order = True


ALGORITHMS: tuple[str, ...] = tuple(REGISTRY)
"""The names ``meta_gradient``, ``meta_train``, ``evaluate`` and the command line accept."""


def get_algorithm(algorithm: str | Algorithm) -> Algorithm:
    """The ``Algorithm`` for a name in ``ALGORITHMS`` (an ``Algorithm`` is returned as it is)."""
    if isinstance(algorithm, Algorithm):
        return algorithm
    if isinstance(algorithm, str) and algorithm in REGISTRY:
        return REGISTRY[algorithm]
    raise ValueError(f"algorithm must be one of {', '.join(map(repr, ALGORITHMS))}, got {algorithm!r}")


# --------------------------------------------------------------------------------------------------
# Checks


def check_hyperparameters(*, inner_lr: float, inner_steps: int, algorithm: str | Algorithm | None = None) -> None:
    """Raise ``ValueError`` naming the argument if a hyperparameter is out of range."""
    if isinstance(inner_lr, bool) or not isinstance(inner_lr, (int, float)) or not math.isfinite(inner_lr) \
            or inner_lr <= 0:
        raise ValueError(f"inner_lr must be a finite number > 0, got {inner_lr!r}")
    if isinstance(inner_steps, bool) or not isinstance(inner_steps, int) or inner_steps < 0:
        raise ValueError(f"inner_steps must be an integer >= 0, got {inner_steps!r}")
    if algorithm is not None:
        get_algorithm(algorithm)


def check_meta_state(algorithm: Algorithm, params: Mapping[str, torch.Tensor],
                     meta_state: Mapping[str, torch.Tensor] | None) -> Params:
    """``meta_state`` as a dict, checked against what ``algorithm`` learns for ``params``.

    Raises ``ValueError`` saying what to pass if it is missing, has other keys or shapes, or is given to an
    algorithm that learns nothing besides θ.
    """
    expected = algorithm.init_meta_state({k: p.detach() for k, p in params.items()}, 1.0)
    given = dict(meta_state or {})
    if not expected:
        if given:
            raise ValueError(f"{algorithm.name} learns nothing besides the weights, but meta_state was given "
                             f"({sorted(given)}); leave meta_state out")
        return given
    if not given:
        raise ValueError(f"{algorithm.name} meta-learns {sorted(expected)[0]!r} and more besides the weights: pass "
                         f"meta_state=get_algorithm({algorithm.name!r}).init_meta_state(params, inner_lr) "
                         "(meta_train updates it in place; a checkpoint stores it)")
    if sorted(given) != sorted(expected):
        raise ValueError(f"meta_state for {algorithm.name} must have the keys {sorted(expected)}, got {sorted(given)}")
    for k, want in expected.items():
        if given[k].shape != want.shape:
            raise ValueError(f"meta_state[{k!r}] must have shape {tuple(want.shape)}, got {tuple(given[k].shape)}")
    return given


# --------------------------------------------------------------------------------------------------
# The inner loop


def inner_loop(model: nn.Module, algorithm: Algorithm, params: Mapping[str, torch.Tensor],
               meta_state: Mapping[str, torch.Tensor], support_x: torch.Tensor, support_y: torch.Tensor, *,
               inner_lr: float, inner_steps: int, first_order: bool) -> Params:
    r"""``inner_steps`` of ``algorithm``'s inner steps on one task's support set, with ``torch.autograd``.

    ``support_x [n, ...]``, ``support_y [n]`` (classes) or ``[n, 1]`` (regression), no task dimension.
    Returns θ′, same keys and shapes as ``params``; weights the algorithm does not adapt are returned as
    they are. ``first_order=False`` keeps the graph through the inner gradients (``create_graph=True``),
    so θ′ is a differentiable function of θ and of the meta-state. ``first_order=True`` takes each inner
    gradient at a detached copy, a constant for any outer backward: ∂θ′/∂θ = I and memory does not grow
    with ``inner_steps``, while θ′ still depends on the meta-state through the step (Meta-SGD's α).
    """
    names = algorithm.adapted_names(model, params)
    adapted = dict(params)
    for _ in range(inner_steps):
        with torch.enable_grad():
            if first_order:
                inputs = {k: p.detach().requires_grad_(k in names) for k, p in adapted.items()}
            else:
                inputs = {k: p if p.requires_grad or k not in names else p.detach().requires_grad_(True)
                          for k, p in adapted.items()}
            loss = task_loss(model, inputs, support_x, support_y)
            grads = torch.autograd.grad(loss, [inputs[k] for k in names], create_graph=not first_order)
            base = adapted if first_order else inputs
            adapted = {**adapted, **{k: algorithm.inner_step(k, base[k], g, meta_state, inner_lr)
                                     for k, g in zip(names, grads)}}
    return adapted


def functional_inner_step(model: nn.Module, algorithm: Algorithm, params: Params, meta_state: Params,
                          support_x: torch.Tensor, support_y: torch.Tensor, *, names: list[str], inner_lr: float,
                          first_order: bool) -> Params:
    """One inner step of ``algorithm`` as a pure function (``torch.func.grad``), to run under ``vmap``.

    ``names``: ``algorithm.adapted_names(model, params)``. With ``first_order`` the support gradient is
    taken at detached weights, a constant for an enclosing ``torch.func.grad``.
    """
    base = {k: p.detach() for k, p in params.items()} if first_order else params

    def support_loss(adapting: Params) -> torch.Tensor:
        return task_loss(model, {**base, **adapting}, support_x, support_y)

    grads = torch.func.grad(support_loss)({k: base[k] for k in names})
    return {**params, **{k: algorithm.inner_step(k, params[k], grads[k], meta_state, inner_lr) for k in names}}

"""Optax transformations as optref transformations."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import optax
from jaxtyping import PyTree

from optref.core import GradientTransformation, StateMismatchError, TreeMismatchError
from optref.core._tree_check import check_tree_fits

from ._describe import describe_state, is_optax_transformation, optax_name, optref_of

__all__ = ["FromOptax", "from_optax"]


def _with_extra_args(opt: Any) -> optax.GradientTransformationExtraArgs:
    if isinstance(opt, optax.GradientTransformationExtraArgs):
        return opt
    return optax.with_extra_args_support(optax.GradientTransformation(opt.init, opt.update))


class FromOptax(GradientTransformation):
    """An Optax transformation as an optref :class:`~optref.core.GradientTransformation`.

    ``init`` and ``update`` are the Optax transformation's; its state is the Optax state
    itself, unwrapped, so that

    - a :func:`~optref.core.chain` holding it has the state layout of the same
      ``optax.chain`` (``state[1]`` is the Optax state, ``state[1].mu`` its field), which
      is what the conversions of :func:`state_to_optax` and :func:`state_from_optax`
      match leaf by leaf, by key path;
    - Optax's state tools (``optax.tree_utils.tree_get``, ``tree_set``) work on it.

    ``update`` checks, at trace time, that the state has the structure and shapes that
    the Optax ``init`` gives for these updates (or params), so a state of another
    optimizer is refused with a message that names both. The Optax transformation is a
    static field: its hyperparameters are baked into its closures, as in Optax.
    """

    transformation: optax.GradientTransformationExtraArgs = eqx.field(static=True)
    name: str = eqx.field(static=True, default="optax")

    def __check_init__(self) -> None:
        if not is_optax_transformation(self.transformation):
            raise TypeError(
                f"from_optax: expected an Optax GradientTransformation, got "
                f"{type(self.transformation).__name__}."
            )

    def init(self, params: PyTree) -> PyTree:
        return self.transformation.init(params)

    def update(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> tuple[PyTree, Any]:
        self._check_state(updates, state, params)
        return self.transformation.update(updates, state, params, **extra)

    def _check_state(self, updates: PyTree, state: Any, params: PyTree | None) -> None:
        where = f"from_optax({self.name})"
        reference = params if params is not None else updates
        try:
            expected = jax.eval_shape(self.transformation.init, reference)
        except Exception:
            return
        if jax.tree.structure(expected) != jax.tree.structure(state):
            raise StateMismatchError(
                f"{where}: the state is not a state of {self.name} for these "
                f"{'params' if params is not None else 'updates'}: {self.name}.init builds "
                f"{describe_state(expected)}, got {describe_state(state)}. Was the state "
                "built by another optimizer, or for params of another structure?"
            )
        try:
            check_tree_fits(
                expected,
                state,
                where=where,
                reference_name=f"the state of {self.name}",
                tree_name="state",
            )
        except TreeMismatchError as error:
            raise StateMismatchError(str(error)) from None


def from_optax(opt: Any, name: str | None = None) -> Any:
    """Wrap an Optax transformation as an optref transformation.

    $$\\operatorname{from\\_optax}(T) = T$$

    The result is a :class:`FromOptax` (an :class:`equinox.Module`), usable wherever
    optref takes a transformation: in :func:`~optref.core.chain`, masks and partitions.
    Its state is the Optax state itself. ``update`` forwards the extra keyword arguments
    (``value``, ``grad``, ``value_fn``) when the Optax transformation takes them
    (``GradientTransformationExtraArgs``) and drops them otherwise, as ``optax.chain``
    does.

    ``from_optax(to_optax(tx))`` is ``tx`` itself. Given an Optax *factory* (such as
    ``optax.adam``) rather than a transformation, returns a factory with the same
    signature that builds wrapped transformations. ``name`` names the transformation
    in error messages (default: the Optax factory that built it, e.g. ``scale_by_adam``).

    Reference: the Optax ``GradientTransformation`` protocol.
    """
    if isinstance(opt, GradientTransformation):
        raise TypeError(
            f"from_optax: {type(opt).__name__} is already an optref transformation; "
            "use it directly (to_optax turns it into an Optax one)."
        )
    wrapped = optref_of(opt)
    if wrapped is not None:
        return wrapped
    if hasattr(opt, "init") and hasattr(opt, "update"):
        opt = _with_extra_args(opt)
        return FromOptax(opt, name if name is not None else optax_name(opt))
    if callable(opt):
        factory: Callable[..., Any] = opt

        @functools.wraps(factory)
        def make(*args: Any, **kwargs: Any) -> FromOptax:
            return from_optax(factory(*args, **kwargs), name)

        return make
    raise TypeError(
        f"from_optax: expected an Optax GradientTransformation (or a factory of one), got "
        f"{type(opt).__name__}."
    )

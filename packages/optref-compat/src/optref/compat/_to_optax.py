"""optref transformations as Optax transformations."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import optax
from jaxtyping import PyTree

from optref.core import GradientTransformation
from optref.core._inner import follows_protocol

from ._describe import OPTREF_MARKER, is_optax_transformation

__all__ = ["to_optax"]


def to_optax(tx: Any) -> Any:
    """Wrap an optref transformation as an ``optax.GradientTransformationExtraArgs``.

    $$\\operatorname{to\\_optax}(T) = (T.\\mathrm{init},\\ T.\\mathrm{update})$$

    The result behaves exactly like ``tx``: ``init(params)`` is ``tx.init(params)`` and
    ``update(updates, state, params=None, **extra_args)`` is ``tx.update(...)``, extra
    arguments (``value``, ``grad``, ``value_fn``) included. It works wherever Optax takes
    a transformation: ``optax.chain``, ``optax.MultiSteps``, ``optax.apply_if_finite``,
    ``optax.masked``, ``optax.tree_utils.tree_map_params`` (tree masks and labels
    included: their structure is not checked against its placeholder, as in Optax), and
    libraries such as Optimistix (``optx.OptaxMinimiser``). The
    state is ``tx``'s own (an :class:`equinox.Module`); :func:`state_to_optax` turns it
    into the state of ``tx``'s Optax counterpart.

    ``init`` and ``update`` are closures over ``tx``, as Optax's are over their
    hyperparameters, so ``equinox.internal.closure_to_pytree`` (which Optimistix applies)
    turns the hyperparameters back into leaves. ``to_optax(from_optax(opt))`` is ``opt``.

    Given an optref *factory* (such as ``optref.core.adam``) rather than a
    transformation, returns a factory with the same signature that builds wrapped
    transformations, for code that takes Optax factories:
    ``optax.inject_hyperparams(to_optax(optref.core.adam))(learning_rate=0.1)``.

    Reference: the Optax ``GradientTransformationExtraArgs`` protocol.
    """
    from ._from_optax import FromOptax

    if isinstance(tx, FromOptax):
        return tx.transformation
    if follows_protocol(tx):  # a GradientTransformation, or reduce_on_plateau's module
        return _wrap(tx)
    if is_optax_transformation(tx):
        raise TypeError(
            "to_optax: this is already an Optax transformation; use it directly "
            "(from_optax turns it into an optref one)."
        )
    if callable(tx):
        factory: Callable[..., Any] = tx

        @functools.wraps(factory)
        def make(*args: Any, **kwargs: Any) -> Any:
            return to_optax(factory(*args, **kwargs))

        return make
    raise TypeError(
        f"to_optax: expected an optref GradientTransformation (or a factory of one), got "
        f"{type(tx).__name__}."
    )


def _wrap(tx: GradientTransformation) -> optax.GradientTransformationExtraArgs:
    def init(params: PyTree) -> PyTree:
        return tx.init(params)

    def update(
        updates: PyTree, state: PyTree, params: PyTree | None = None, **extra_args: Any
    ) -> tuple[PyTree, PyTree]:
        return tx.update(updates, state, params, **extra_args)

    setattr(init, OPTREF_MARKER, tx)
    setattr(update, OPTREF_MARKER, tx)
    return optax.GradientTransformationExtraArgs(init, update)

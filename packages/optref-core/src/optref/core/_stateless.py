"""Transformations without state: identity, zeros, and user functions."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
from jaxtyping import PyTree

from ._base import EmptyState, GradientTransformation, check_state
from ._tree import tree_zeros_like

__all__ = [
    "Identity",
    "SetToZero",
    "Stateless",
    "StatelessWithTreeMap",
    "identity",
    "set_to_zero",
    "stateless",
    "stateless_with_tree_map",
]


class _StatelessBase(GradientTransformation):
    def init(self, params: PyTree) -> EmptyState:
        del params
        return EmptyState()

    @abc.abstractmethod
    def _apply(self, updates: PyTree, params: PyTree | None) -> PyTree:
        """The new updates."""

    def update(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> tuple[PyTree, EmptyState]:
        check_state(self, updates, state, EmptyState, params)
        return self._apply(updates, params), state


class Identity(_StatelessBase):
    """Leave the updates as they are.

    Built by :func:`identity`, whose docstring gives the math and the references.
    """

    def _apply(self, updates: PyTree, params: PyTree | None) -> PyTree:
        return updates


def identity() -> Identity:
    """The identity transformation: $u \\mapsto u$. Reference: ``optax.identity``."""
    return Identity()


class SetToZero(_StatelessBase):
    """Replace every update by zero.

    Built by :func:`set_to_zero`, whose docstring gives the math and the references.
    """

    def _apply(self, updates: PyTree, params: PyTree | None) -> PyTree:
        return tree_zeros_like(updates)


def set_to_zero() -> SetToZero:
    """Set every update to zero: $u \\mapsto 0$ (freezes what it is applied to).

    Reference: ``optax.set_to_zero``.
    """
    return SetToZero()


class Stateless(_StatelessBase):
    """Apply ``fn(updates, params)`` to the whole tree.

    Built by :func:`stateless`, whose docstring gives the math and the references.
    """

    fn: Callable[[PyTree, PyTree | None], PyTree] = eqx.field(static=True)

    def __check_init__(self) -> None:
        if not callable(self.fn):
            raise TypeError(f"stateless: f must be callable, got {self.fn!r}.")

    def _apply(self, updates: PyTree, params: PyTree | None) -> PyTree:
        return self.fn(updates, params)


def stateless(f: Callable[[PyTree, PyTree | None], PyTree]) -> Stateless:
    """A transformation from a function of the updates and params: $u \\mapsto f(u, p)$.

    Reference: ``optax.stateless``.
    """
    return Stateless(f)


class StatelessWithTreeMap(_StatelessBase):
    """Apply ``fn(update, param)`` to every leaf.

    Built by :func:`stateless_with_tree_map`, whose docstring gives the math and the references.
    """

    fn: Callable[[Any, Any], Any] = eqx.field(static=True)

    def __check_init__(self) -> None:
        if not callable(self.fn):
            raise TypeError(f"stateless_with_tree_map: f must be callable, got {self.fn!r}.")

    def _apply(self, updates: PyTree, params: PyTree | None) -> PyTree:
        if params is None:
            return jax.tree.map(lambda u: self.fn(u, None), updates)
        return jax.tree.map(self.fn, updates, params)


def stateless_with_tree_map(f: Callable[[Any, Any], Any]) -> StatelessWithTreeMap:
    """A transformation from a leafwise function: $u_i \\mapsto f(u_i, p_i)$.

    Reference: ``optax.stateless_with_tree_map``.
    """
    return StatelessWithTreeMap(f)

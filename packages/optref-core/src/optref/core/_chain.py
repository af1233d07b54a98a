"""Composition: apply transformations one after another."""

from __future__ import annotations

from typing import Any

import equinox as eqx
from jaxtyping import PyTree

from ._base import GradientTransformation, StateMismatchError

__all__ = ["Chain", "NamedChain", "chain", "named_chain"]


def _follows_protocol(tx: Any) -> bool:
    """Whether ``tx`` can be a member of :func:`chain`: a :class:`GradientTransformation`,
    or any ``eqx.Module`` with callable ``init`` and ``update`` methods (the protocol by
    structure, as ``optref.schedules.reduce_on_plateau``, which does not depend on core).

    $$\\operatorname{member}(T) \\iff T \\in \\texttt{GradientTransformation} \\lor
    (T \\in \\texttt{eqx.Module} \\land T.\\mathrm{init}, T.\\mathrm{update}
    \\text{ callable})$$
    """
    if isinstance(tx, GradientTransformation):
        return True
    methods = (getattr(type(tx), name, None) for name in ("init", "update"))
    return isinstance(tx, eqx.Module) and all(callable(method) for method in methods)


def _check_members(where: str, transformations: tuple[Any, ...]) -> None:
    for index, tx in enumerate(transformations):
        if not _follows_protocol(tx):
            raise TypeError(
                f"{where}: argument {index} must be an optref GradientTransformation (or an "
                f"eqx.Module with init and update methods), got {type(tx).__name__}. Wrap an "
                "Optax transformation with optref.compat.from_optax."
            )


class Chain(GradientTransformation):
    """Apply ``transformations`` in order; the state is the tuple of their states."""

    transformations: tuple[GradientTransformation, ...]

    def __check_init__(self) -> None:
        _check_members("chain", self.transformations)

    def init(self, params: PyTree) -> tuple[PyTree, ...]:
        return tuple(tx.init(params) for tx in self.transformations)

    def update(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> tuple[PyTree, tuple[PyTree, ...]]:
        if not isinstance(state, tuple) or len(state) != len(self.transformations):
            got = f"a tuple of {len(state)}" if isinstance(state, tuple) else type(state).__name__
            raise StateMismatchError(
                f"chain: expected a tuple of {len(self.transformations)} states (one per "
                f"member), got {got}."
            )
        new_state = []
        for tx, member_state in zip(self.transformations, state, strict=True):
            updates, member_state = tx.update(updates, member_state, params, **extra)
            new_state.append(member_state)
        return updates, tuple(new_state)


def chain(*transformations: GradientTransformation) -> Chain:
    """Apply transformations one after another.

    $$u \\mapsto T_n(\\cdots T_2(T_1(u)))$$

    The state is the tuple of the members' states, as in Optax, so ``state[1]`` is the
    second member's state. Extra keyword arguments of ``update`` reach every member.

    Reference: Optax's ``optax.chain``.
    """
    return Chain(tuple(transformations))


class NamedChain(GradientTransformation):
    """Apply named transformations in order; the state is a dict from name to state."""

    names: tuple[str, ...] = eqx.field(static=True)
    transformations: tuple[GradientTransformation, ...]

    def __check_init__(self) -> None:
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"named_chain: names must be unique, got {list(self.names)}.")
        _check_members("named_chain", self.transformations)

    def init(self, params: PyTree) -> dict[str, PyTree]:
        return {
            name: tx.init(params) for name, tx in zip(self.names, self.transformations, strict=True)
        }

    def update(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> tuple[PyTree, dict[str, PyTree]]:
        if not isinstance(state, dict) or set(state) != set(self.names):
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise StateMismatchError(
                f"named_chain: expected a dict of states keyed by {list(self.names)}, got {got}."
            )
        new_state = {}
        for name, tx in zip(self.names, self.transformations, strict=True):
            updates, new_state[name] = tx.update(updates, state[name], params, **extra)
        return updates, new_state


def named_chain(*named: tuple[str, GradientTransformation]) -> NamedChain:
    """Apply ``(name, transformation)`` pairs in order; the state is keyed by name.

    $$u \\mapsto T_n(\\cdots T_1(u)), \\qquad \\text{state} = \\{\\text{name}_i: s_i\\}$$

    Reference: Optax's ``optax.named_chain``.
    """
    for index, item in enumerate(named):
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
            raise TypeError(
                f"named_chain: argument {index} must be a (name, transformation) pair, "
                f"got {item!r}."
            )
    return NamedChain(tuple(n for n, _ in named), tuple(t for _, t in named))

"""Composition: apply transformations one after another."""

from __future__ import annotations

from typing import Any

import equinox as eqx
from jaxtyping import PyTree

from ._base import GradientTransformation, StateMismatchError
from ._inner import check_inner
from ._leafwise import LeafwiseTransformation, apply_leafwise

__all__ = ["Chain", "NamedChain", "chain", "named_chain"]


def _check_members(where: str, transformations: tuple[Any, ...]) -> None:
    for index, tx in enumerate(transformations):
        check_inner(where, f"argument {index}", tx)


def _run_members(
    transformations: tuple[GradientTransformation, ...],
    states: list[PyTree],
    updates: PyTree,
    params: PyTree | None,
    extra: dict[str, Any],
    fuse: bool,
) -> tuple[PyTree, list[PyTree]]:
    """Apply ``transformations`` in order; with ``fuse``, each run of consecutive leafwise
    members is one pass over the leaves (:func:`optref.core.apply_leafwise`).

    A member whose prelude reads the updates' values (``reads_updates``, a reduction such
    as global-norm clipping) opens a new run, so its reduction sees its own input; any
    other member ends the run. The fused run calls every member's leaf function, in
    order, on the values the unfused chain would give it, so the results are the same.
    """
    new_states: list[PyTree] = [None] * len(transformations)
    run: list[tuple[int, LeafwiseTransformation]] = []

    def flush(updates: PyTree) -> PyTree:
        if not run:
            return updates
        steps = [tx.leafwise(updates, states[i], params, **extra) for i, tx in run]
        updates, run_states = apply_leafwise(steps, updates, params)
        for (i, _), member_state in zip(run, run_states, strict=True):
            new_states[i] = member_state
        run.clear()
        return updates

    for index, tx in enumerate(transformations):
        if fuse and isinstance(tx, LeafwiseTransformation):
            if tx.reads_updates:
                updates = flush(updates)
            run.append((index, tx))
            continue
        updates = flush(updates)
        updates, new_states[index] = tx.update(updates, states[index], params, **extra)
    return flush(updates), new_states


class Chain(GradientTransformation):
    """Apply ``transformations`` in order; the state is the tuple of their states.

    With ``fuse`` (the default), consecutive leafwise members run in one pass over the
    leaves; ``fuse=False`` runs every member's own ``update`` in turn. Both give the same
    bits.

    Built by :func:`chain`, whose docstring gives the math and the references.
    """

    transformations: tuple[GradientTransformation, ...]
    fuse: bool = eqx.field(static=True, default=True)

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
        updates, new_state = _run_members(
            self.transformations, list(state), updates, params, extra, self.fuse
        )
        return updates, tuple(new_state)


def chain(*transformations: GradientTransformation, fuse: bool = True) -> Chain:
    """Apply transformations one after another.

    $$u \\mapsto T_n(\\cdots T_2(T_1(u)))$$

    The state is the tuple of the members' states, as in Optax, so ``state[1]`` is the
    second member's state. Extra keyword arguments of ``update`` reach every member.

    Consecutive elementwise members (:class:`optref.core.LeafwiseTransformation`: Adam's
    scaling, momentum, Lion, weight decay, the learning rate, ...) are composed into one
    pass over the leaves: for each leaf, their per-leaf functions run one after another.
    A reduction that opens a run (global-norm clipping) is computed first, on the run's
    input. The numbers are those of the members applied one at a time, bit for bit;
    ``fuse=False`` applies them one at a time.

    Reference: Optax's ``optax.chain``.
    """
    return Chain(tuple(transformations), fuse)


class NamedChain(GradientTransformation):
    """Apply named transformations in order; the state is a dict from name to state.

    Built by :func:`named_chain`, whose docstring gives the math and the references.
    """

    names: tuple[str, ...] = eqx.field(static=True)
    transformations: tuple[GradientTransformation, ...]
    fuse: bool = eqx.field(static=True, default=True)

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
        states = [state[name] for name in self.names]
        updates, new_states = _run_members(
            self.transformations, states, updates, params, extra, self.fuse
        )
        return updates, dict(zip(self.names, new_states, strict=True))


def named_chain(*named: tuple[str, GradientTransformation]) -> NamedChain:
    """Apply ``(name, transformation)`` pairs in order; the state is keyed by name.

    $$u \\mapsto T_n(\\cdots T_1(u)), \\qquad \\text{state} = \\{\\text{name}_i: s_i\\}$$

    Consecutive elementwise members run in one pass over the leaves, as in :func:`chain`.

    Reference: Optax's ``optax.named_chain``.
    """
    for index, item in enumerate(named):
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
            raise TypeError(
                f"named_chain: argument {index} must be a (name, transformation) pair, "
                f"got {item!r}."
            )
    return NamedChain(tuple(n for n, _ in named), tuple(t for _, t in named))

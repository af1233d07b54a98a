"""The runtime type checker that validates states when they are built (at trace time)."""

from __future__ import annotations

from beartype import beartype

__all__ = ["typechecker"]

#: Passed to :func:`jaxtyping.jaxtyped` on every state class: shapes, dtypes and the
#: PyTree structure shared by the fields are checked each time a state is built.
typechecker = beartype

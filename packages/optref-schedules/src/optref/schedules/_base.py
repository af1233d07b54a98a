"""The schedule protocol: an Equinox module whose fields are its parameters, called with a count.

A schedule is any callable ``count -> value``; the schedules here are
:class:`equinox.Module` s, so they print, compare, serialise with
``eqx.tree_serialise_leaves``, pass through ``jit`` as data, ``vmap`` over a batch of
schedules (a learning-rate sweep in one program), and let gradients reach their values.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from ._validation import convert_fields, schedule_name

__all__ = ["Schedule", "as_count", "value_dtypes"]


class Schedule(eqx.Module):
    """A schedule ``count -> value`` whose fields are its parameters.

    Subclasses list their floating parameters in ``value_parameters`` and their step
    counts in ``step_parameters``; both are converted to JAX arrays when the schedule is
    built (floating and integer respectively), so they are leaves of its PyTree. Ranges
    are checked in ``__check_init__``.

    Differentiate a schedule's value with respect to its parameters with
    ``eqx.filter_grad`` (which skips the integer step counts), or build it inside the
    function you differentiate::

        jax.grad(lambda peak: warmup_cosine_decay_schedule(0.0, peak, 10, 100)(count))

    The value is computed in the dtype of the schedule's values (promoted to at least
    float32, and cast back), whatever the dtype of the count.
    """

    value_parameters: ClassVar[tuple[str, ...]] = ()
    step_parameters: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        convert_fields(self, self.value_parameters, self.step_parameters)

    @abc.abstractmethod
    def __call__(self, count: ArrayLike) -> Array:
        """The value at step ``count`` (an integer or floating scalar or array)."""


def as_count(owner: object, count: ArrayLike) -> Array:
    """A step count as a JAX array: integer (any width) or floating, scalar or array."""
    count = jnp.asarray(count)
    if not (jnp.issubdtype(count.dtype, jnp.integer) or jnp.issubdtype(count.dtype, jnp.floating)):
        raise TypeError(
            f"{schedule_name(owner)}: the count must be an integer or floating number or "
            f"array, got dtype {count.dtype}."
        )
    return count


def value_dtypes(*values: ArrayLike | None) -> tuple[jnp.dtype, jnp.dtype]:
    """The dtype of a schedule's values and the dtype it computes in.

    The values' common dtype (``None`` values are skipped) is the dtype of the result;
    the arithmetic is done in it promoted to at least float32, so a bfloat16 schedule
    loses no more than the final rounding.
    """
    dtype = jnp.result_type(*(v for v in values if v is not None))
    return dtype, jnp.promote_types(dtype, jnp.float32)

"""The schedule protocol: an Equinox module whose fields are its parameters, called with a count.

A schedule is any callable ``count -> value``; the schedules here are
:class:`equinox.Module` s, so they print, compare, serialise with
``eqx.tree_serialise_leaves``, pass through ``jit`` as data, ``vmap`` over a batch of
schedules (a learning-rate sweep in one program), and let gradients reach their values.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from ._hashing import HashedByValue
from ._validation import ScheduleArgumentError, convert_fields, schedule_name

__all__ = ["Schedule", "as_count", "step_difference", "value_dtypes"]


class Schedule(HashedByValue):
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

    A schedule hashes by its values (:class:`HashedByValue`), so ``jax.jit(schedule)``
    compiles it as a function; equal schedules share the compiled program.
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
    try:
        count = jnp.asarray(count)
    except OverflowError as error:
        raise ScheduleArgumentError(
            f"{schedule_name(owner)}: the count {count!r} does not fit JAX's integer dtype "
            "(int32 unless jax_enable_x64 is on); enable 64-bit integers or pass a float."
        ) from error
    if not (jnp.issubdtype(count.dtype, jnp.integer) or jnp.issubdtype(count.dtype, jnp.floating)):
        raise TypeError(
            f"{schedule_name(owner)}: the count must be an integer or floating number or "
            f"array, got dtype {count.dtype}."
        )
    return count


def step_difference(a: ArrayLike, b: ArrayLike) -> Array:
    """``a - b`` for step counts, saturating at the integer dtype's limits instead of wrapping.

    $$a \\ominus b = \\operatorname{clip}(a - b,\\ \\min_{\\text{int}},\\ \\max_{\\text{int}})$$

    Exact wherever the difference fits (bit for bit what ``a - b`` gives), and of the
    right sign where it does not, which is all a schedule needs there: a difference
    beyond the integer range is before the start or after the end of any transition. So
    ``2**31 - 1`` works as an "infinite" number of int32 steps, with a ``transition_begin``
    added, and counts far before a join boundary select nothing by mistake. Floating
    counts are subtracted as they are.
    """
    difference = jnp.subtract(a, b)
    if not jnp.issubdtype(difference.dtype, jnp.signedinteger):
        return difference
    a, b = jnp.asarray(a, difference.dtype), jnp.asarray(b, difference.dtype)
    # Two's complement: a - b wraps iff a and b differ in sign and the result's sign is b's.
    wrapped = ((a < 0) != (b < 0)) & ((difference < 0) != (a < 0))
    info = jnp.iinfo(difference.dtype)
    saturated = jnp.where(a < 0, info.min, info.max).astype(difference.dtype)
    return jnp.where(wrapped, saturated, difference)


def value_dtypes(*values: ArrayLike | None) -> tuple[jnp.dtype, jnp.dtype]:
    """The dtype of a schedule's values and the dtype it computes in.

    The values' common dtype (``None`` values are skipped) is the dtype of the result;
    the arithmetic is done in it promoted to at least float32, so a bfloat16 schedule
    loses no more than the final rounding.
    """
    dtype = jnp.result_type(*(v for v in values if v is not None))
    return dtype, jnp.promote_types(dtype, jnp.float32)

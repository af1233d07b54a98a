"""The constant schedule."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from ._base import Schedule, as_count
from ._validation import as_array

__all__ = ["ConstantSchedule", "constant_schedule"]


class ConstantSchedule(Schedule):
    """``value`` at every step.

    Built by :func:`constant_schedule`, whose docstring gives the math and the references.
    """

    value: Array = eqx.field(converter=as_array)
    value_parameters = ("value",)

    def __call__(self, count: ArrayLike) -> Array:
        count = as_count(self, count)
        shape = jnp.broadcast_shapes(jnp.shape(self.value), count.shape)
        return jnp.broadcast_to(self.value, shape)


def constant_schedule(value: ArrayLike) -> ConstantSchedule:
    """A schedule that holds ``value`` at every step.

    $$v(t) = v$$

    The value is a floating JAX array (a leaf that gradients reach); the result has the
    shape of the count (broadcast with the value's). Reference: ``optax.constant_schedule``
    (which returns ``value`` itself, whatever its type).
    """
    return ConstantSchedule(value)

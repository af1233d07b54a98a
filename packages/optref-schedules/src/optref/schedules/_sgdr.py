"""SGDR: cosine annealing with warm restarts, as joined warmup-cosine cycles."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from ._base import Schedule, as_count
from ._join import join_at
from ._validation import ScheduleArgumentError, is_concrete
from ._warmup import WarmupCosineDecaySchedule, warmup_cosine_decay_schedule

__all__ = ["SgdrSchedule", "sgdr_schedule"]


class SgdrSchedule(Schedule):
    """The ``cycles`` one after another, each ``decay_steps`` long and restarted from count 0.

    Built by :func:`sgdr_schedule`, whose docstring gives the math and the references.
    """

    cycles: tuple[WarmupCosineDecaySchedule, ...]

    def __check_init__(self) -> None:
        if not self.cycles:
            raise ScheduleArgumentError("sgdr_schedule: cosine_kwargs must not be empty.")
        for index, cycle in enumerate(self.cycles):
            if not isinstance(cycle, WarmupCosineDecaySchedule):
                raise ScheduleArgumentError(
                    f"sgdr_schedule: cycles[{index}] must be a WarmupCosineDecaySchedule, "
                    f"got {type(cycle).__name__}."
                )
        lengths = [cycle.decay_steps for cycle in self.cycles]
        if is_concrete(lengths):
            # The restarts are the cumulative sums of the lengths, in their integer dtype.
            restart = np.sum([np.asarray(n, np.int64) for n in lengths[:-1]], axis=0)
            limit = jnp.iinfo(jnp.result_type(*lengths)).max
            if np.any(restart > limit):
                raise ScheduleArgumentError(
                    f"sgdr_schedule: the cycles' decay_steps add up to {restart.tolist()} "
                    f"before the last cycle, beyond {limit}, the largest step of their "
                    "integer dtype; enable jax_enable_x64 for longer schedules."
                )

    def __call__(self, count: ArrayLike) -> Array:
        lengths = jnp.stack([cycle.decay_steps for cycle in self.cycles])
        boundaries = jnp.cumsum(lengths)[:-1]
        return join_at(as_count(self, count), self.cycles, boundaries)


def sgdr_schedule(cosine_kwargs: Iterable[Mapping[str, Any]]) -> SgdrSchedule:
    """Stochastic gradient descent with warm restarts: joined warmup-cosine cycles.

    Cycle $k$ is :func:`warmup_cosine_decay_schedule` ``(**cosine_kwargs[k])``, of length
    $D_k$ (its ``decay_steps``, warmup included); it runs on
    $[\\sum_{j<k} D_j, \\sum_{j \\le k} D_j)$ with its count restarted from 0, and the last
    cycle holds its end value after its end:

    $$v(t) = f_k\\Big(t - \\sum_{j<k} D_j\\Big), \\qquad \\sum_{j<k} D_j \\le t <
    \\sum_{j\\le k} D_j.$$

    The cycles are the module's fields, so every cycle's values are differentiable
    leaves. Each cycle is checked as :func:`warmup_cosine_decay_schedule` checks it; an
    empty ``cosine_kwargs`` raises.

    Reference: Loshchilov & Hutter, *SGDR: Stochastic Gradient Descent with Warm
    Restarts* (ICLR 2017); ``optax.sgdr_schedule``.
    """
    return SgdrSchedule(tuple(warmup_cosine_decay_schedule(**kwargs) for kwargs in cosine_kwargs))

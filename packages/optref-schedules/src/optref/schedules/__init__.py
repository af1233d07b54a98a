"""optref.schedules: Optax's schedules as differentiable Equinox modules.

Every schedule is an :class:`equinox.Module` whose fields are its parameters (values as
floating JAX arrays that gradients reach, step counts as integer arrays), built by the
Optax-named factory (``warmup_cosine_decay_schedule``, ...) and called with a step
count. :func:`reduce_on_plateau` is a transformation with state that follows the optref
protocol by duck typing. This package depends on jax, equinox and jaxtyping only.
"""

from ._base import Schedule, as_count, value_dtypes
from ._constant import ConstantSchedule, constant_schedule
from ._cosine import CosineDecaySchedule, cosine_decay_schedule
from ._exponential import ExponentialDecay, exponential_decay
from ._join import JoinSchedules, join_schedules
from ._onecycle import (
    CosineOnecycleSchedule,
    LinearOnecycleSchedule,
    cosine_onecycle_schedule,
    linear_onecycle_schedule,
)
from ._piecewise import (
    PiecewiseConstantSchedule,
    PiecewiseInterpolateSchedule,
    piecewise_constant_schedule,
    piecewise_interpolate_schedule,
)
from ._plateau import ReduceLROnPlateauState, ReduceOnPlateau, reduce_on_plateau
from ._polynomial import LinearSchedule, PolynomialSchedule, linear_schedule, polynomial_schedule
from ._sgdr import SgdrSchedule, sgdr_schedule
from ._transition import transition
from ._validation import ScheduleArgumentError
from ._warmup import (
    WarmupConstantSchedule,
    WarmupCosineDecaySchedule,
    WarmupExponentialDecaySchedule,
    warmup_constant_schedule,
    warmup_cosine_decay_schedule,
    warmup_exponential_decay_schedule,
)

__all__ = [
    "ConstantSchedule",
    "CosineDecaySchedule",
    "CosineOnecycleSchedule",
    "ExponentialDecay",
    "JoinSchedules",
    "LinearOnecycleSchedule",
    "LinearSchedule",
    "PiecewiseConstantSchedule",
    "PiecewiseInterpolateSchedule",
    "PolynomialSchedule",
    "ReduceLROnPlateauState",
    "ReduceOnPlateau",
    "Schedule",
    "ScheduleArgumentError",
    "SgdrSchedule",
    "WarmupConstantSchedule",
    "WarmupCosineDecaySchedule",
    "WarmupExponentialDecaySchedule",
    "as_count",
    "constant_schedule",
    "cosine_decay_schedule",
    "cosine_onecycle_schedule",
    "exponential_decay",
    "join_schedules",
    "linear_onecycle_schedule",
    "linear_schedule",
    "piecewise_constant_schedule",
    "piecewise_interpolate_schedule",
    "polynomial_schedule",
    "reduce_on_plateau",
    "sgdr_schedule",
    "transition",
    "value_dtypes",
    "warmup_constant_schedule",
    "warmup_cosine_decay_schedule",
    "warmup_exponential_decay_schedule",
]

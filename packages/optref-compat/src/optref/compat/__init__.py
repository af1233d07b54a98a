"""optref.compat: shims between optref and Optax, states included.

- :func:`to_optax` turns an optref transformation into an Optax one;
- :func:`from_optax` turns an Optax transformation into an optref one;
- :func:`state_to_optax` and :func:`state_from_optax` convert optimizer states, so a run
  can switch library mid-way;
- :func:`optax_counterpart` builds the Optax transformation that computes what an optref
  transformation does, and :func:`register_optax_counterpart` teaches it new classes.
"""

from ._counterparts import (
    NoCounterpartError,
    has_optax_counterpart,
    optax_counterpart,
    register_optax_counterpart,
)
from ._describe import describe_state, describe_transformation
from ._from_optax import FromOptax, from_optax
from ._states import StateConversionError, state_from_optax, state_to_optax
from ._to_optax import to_optax

__all__ = [
    "FromOptax",
    "NoCounterpartError",
    "StateConversionError",
    "describe_state",
    "describe_transformation",
    "from_optax",
    "has_optax_counterpart",
    "optax_counterpart",
    "register_optax_counterpart",
    "state_from_optax",
    "state_to_optax",
    "to_optax",
]

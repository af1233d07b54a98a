"""optref.linesearch: backtracking and zoom line searches and L-BFGS, as Equinox modules.

Line searches take, besides the updates (a search direction), the objective's value and
gradient at the params and the objective itself: ``update(updates, state, params,
value=..., grad=..., value_fn=...)``. :func:`value_and_grad_from_state` reuses the ones
a line search computed.
"""

from ._backtracking import (
    BacktrackingLinesearchInfo,
    ScaleByBacktrackingLinesearch,
    ScaleByBacktrackingLinesearchState,
    scale_by_backtracking_linesearch,
)
from ._interpolation import cubic_minimizer, quadratic_minimizer
from ._lbfgs import ScaleByLBFGS, ScaleByLBFGSState, lbfgs, precondition, scale_by_lbfgs
from ._value_and_grad import value_and_grad_from_state
from ._zoom import (
    ScaleByZoomLinesearch,
    ScaleByZoomLinesearchState,
    ZoomLinesearchInfo,
    scale_by_zoom_linesearch,
)

__all__ = [
    "BacktrackingLinesearchInfo",
    "ScaleByBacktrackingLinesearch",
    "ScaleByBacktrackingLinesearchState",
    "ScaleByLBFGS",
    "ScaleByLBFGSState",
    "ScaleByZoomLinesearch",
    "ScaleByZoomLinesearchState",
    "ZoomLinesearchInfo",
    "cubic_minimizer",
    "lbfgs",
    "precondition",
    "quadratic_minimizer",
    "scale_by_backtracking_linesearch",
    "scale_by_lbfgs",
    "scale_by_zoom_linesearch",
    "value_and_grad_from_state",
]

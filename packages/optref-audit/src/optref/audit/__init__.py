"""optref.audit: the conformance runner and the numerical oracle that audits Optax."""

from ._bad_inputs import BadInput, bad_inputs, check_bad_input, outcome, transformation_names
from ._cases import build, load_cases, resolve_name, to_case
from ._check_differentiability import check_differentiability
from ._check_float64 import check_float64
from ._check_low_precision import LOW_PRECISION_BOUND, check_low_precision, one_step_errors
from ._check_robustness import check_robustness
from ._check_schedule import check_schedule
from ._check_wrappers import check_wrapper_invariance
from ._findings import SEVERITIES, Finding
from ._problems import PROBLEMS, Problem, descent_gradient
from ._run import ALL_CHECKS, run_case
from ._trajectory import Trajectory, flatten_state, run_trajectory

__all__ = [
    "ALL_CHECKS",
    "LOW_PRECISION_BOUND",
    "PROBLEMS",
    "SEVERITIES",
    "BadInput",
    "Finding",
    "Problem",
    "Trajectory",
    "bad_inputs",
    "build",
    "check_bad_input",
    "check_differentiability",
    "check_float64",
    "check_low_precision",
    "check_robustness",
    "check_schedule",
    "check_wrapper_invariance",
    "descent_gradient",
    "flatten_state",
    "load_cases",
    "one_step_errors",
    "outcome",
    "resolve_name",
    "run_case",
    "run_trajectory",
    "to_case",
    "transformation_names",
]

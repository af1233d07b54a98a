"""Running the checks of one case."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import jax

from optref.core.conformance import Case

from ._check_differentiability import check_differentiability
from ._check_float64 import check_float64
from ._check_low_precision import check_low_precision
from ._check_robustness import check_robustness
from ._check_schedule import check_schedule
from ._check_wrappers import check_wrapper_invariance
from ._findings import Finding

__all__ = ["ALL_CHECKS", "CASES_PER_CLEAR", "audit_case", "run_case"]

CHECKS: dict[str, Callable[..., list[Finding]]] = {
    "float64": check_float64,
    "low_precision": check_low_precision,
    "robustness": check_robustness,
    "differentiability": check_differentiability,
    "wrapper_invariance": check_wrapper_invariance,
}
ALL_CHECKS: tuple[str, ...] = tuple(CHECKS)
"""Every check, in the order the runner does them (``first_step`` is part of ``float64``)."""


def run_case(
    case: Case, checks: Iterable[str] = ALL_CHECKS, backend: str | None = None, **options: object
) -> list[Finding]:
    """Run ``checks`` for ``case`` on ``backend`` (the default JAX backend if ``None``).

    float64 is enabled for the duration (the oracle needs it); ``options`` go to the
    checks that take them (``dtypes``, ``libraries``, ``steps``...). Returns the findings:
    an empty list when optref and Optax agree and optref meets its reference properties.
    """
    backend = backend or jax.default_backend()
    findings: list[Finding] = []
    with jax.enable_x64(True), jax.default_device(jax.devices(backend)[0]):
        if case.kind == "schedule":
            return check_schedule(case, backend=backend)
        for name in checks:
            check = CHECKS[name]
            accepted = check.__code__.co_varnames[: check.__code__.co_argcount]
            kwargs = {k: v for k, v in options.items() if k in accepted}
            findings.extend(check(case, backend=backend, **kwargs))
    return findings


#: How many cases a process runs between two ``jax.clear_caches``. Each case compiles
#: programs that no other case uses (about 70 MB of them for an Adam case on the CPU), so
#: a process that kept them all would grow by gigabytes over a full audit; but clearing
#: also drops the small programs compiled for operations run outside them (a cast, a
#: ``where`` on host arrays, a problem's gradient), which have the same shapes from one
#: case to the next and cost a third of a small case's time to compile again.
CASES_PER_CLEAR = 8

_cases_since_clear = 0


def audit_case(item: tuple) -> tuple[list[Finding], float, float]:
    """``run_case(case, checks, backend, **options)`` for ``item = (case, checks, backend,
    options)``: the findings, the wall and the CPU time; a crash is a finding, not the end
    of the audit. A module-level function, so that worker processes can run it.

    After every :data:`CASES_PER_CLEAR` cases run in a process, the compiled programs are
    dropped (``jax.clear_caches``)."""
    global _cases_since_clear
    case, checks, backend, options = item
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        findings = run_case(case, checks=checks, backend=backend, **options)
    except Exception as error:
        findings = [
            Finding(
                case=case.name,
                check="crash",
                severity="error",
                library="both",
                summary=f"the runner raised {type(error).__name__}: {error}"[:500],
                backend=backend,
            )
        ]
    _cases_since_clear += 1
    if _cases_since_clear >= CASES_PER_CLEAR:
        jax.clear_caches()
        _cases_since_clear = 0
    return findings, time.perf_counter() - start, time.process_time() - cpu_start

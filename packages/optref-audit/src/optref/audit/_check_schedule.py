"""Schedules: float64 values equal to Optax's at every integer step, and derivatives with
respect to the schedule's parameters equal to central differences."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike
from jaxtyping import Array

from optref.core.conformance import Case

from ._cases import build
from ._check_differentiability import FD_RTOL
from ._findings import Finding
from ._reproducer import optax_schedule_reproducer
from ._versions import applicable_deviation

__all__ = ["check_schedule"]


def _values(
    schedule: Callable[[Array], ArrayLike], steps: int, dtype: DTypeLike = jnp.int64
) -> np.ndarray:
    counts = jnp.arange(steps + 1, dtype=dtype)
    return np.asarray([np.asarray(schedule(c)) for c in counts], dtype=np.float64)


def check_schedule(case: Case, backend: str = "cpu") -> list[Finding]:
    """Compare a schedule with Optax's over ``0..case.steps`` and check its derivatives."""
    findings = []
    ours = _values(build(case, "optref"), case.steps)
    if case.optax is not None:
        theirs = _values(build(case, "optax"), case.steps)
        mismatch = np.nonzero(~np.isclose(ours, theirs, rtol=case.rtol, atol=0.0))[0]
        if mismatch.size:
            step = int(mismatch[0])
            deviation = applicable_deviation(case, "float64")
            findings.append(
                Finding(
                    case=case.name,
                    check="float64",
                    severity="warning" if deviation else "error",
                    library="optax" if deviation else "both",
                    summary=f"value at step {step}: optref {ours[step]!r}, Optax {theirs[step]!r}"
                    + (f": {deviation.reason}" if deviation else ""),
                    backend=backend,
                    step=step,
                    link=deviation.link if deviation else "",
                    measured={"optref": float(ours[step]), "optax": float(theirs[step])},
                    reproducer=optax_schedule_reproducer(case, step),
                )
            )
    for name in case.hyperparameters:
        value = jnp.asarray(case.kwargs[name], jnp.float64)
        for count in sorted({0, case.steps // 3, case.steps // 2, case.steps}):

            def f(h: jax.Array, count: int = count, name: str = name) -> jax.Array:
                return jnp.asarray(build(case, "optref", **{name: h})(count), jnp.float64)

            grad = float(jax.grad(f)(value))
            h = 1e-6 * max(1.0, abs(float(value)))
            central = float((f(value + h) - f(value - h)) / (2 * h))
            scale = max(abs(central), abs(grad), 1e-8)
            if not np.isfinite(grad) or abs(grad - central) > FD_RTOL * scale + 1e-9:
                findings.append(
                    Finding(
                        case=case.name,
                        check="differentiability",
                        severity="error",
                        library="optref",
                        summary=f"d value/d {name} at step {count}: grad {grad!r} vs central "
                        f"difference {central!r}",
                        backend=backend,
                        step=count,
                        measured={"grad": grad, "central": central},
                    )
                )
    return findings

"""Robustness: zero, tiny and huge gradients give no NaN or Inf, in every float dtype."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from optref.core.conformance import Case

from ._cases import build
from ._findings import Finding
from ._problems import PROBLEMS
from ._trajectory import step_params

__all__ = ["GRADIENT_KINDS", "check_robustness", "special_gradient"]

GRADIENT_KINDS = ("zero", "tiny", "huge")


def special_gradient(params: object, kind: str) -> object:
    """A gradient of the params' dtype that is zero, tiny (the smallest normal) or huge (a
    tenth of the square root of the largest finite value, so that its square, which
    second-moment methods store, is still finite), alternating in sign across elements."""

    def leaf(p: jax.Array) -> jax.Array:
        info = jnp.finfo(p.dtype)
        huge = 0.1 * float(np.sqrt(float(info.max)))
        magnitude = {"zero": 0.0, "tiny": float(info.tiny), "huge": huge}[kind]
        signs = jnp.where(jnp.arange(p.size).reshape(p.shape) % 2 == 0, 1.0, -1.0)
        return (signs * magnitude).astype(p.dtype)

    return jax.tree.map(leaf, params)


def _finite(tree: object) -> bool:
    return all(
        bool(
            np.all(
                np.isfinite(
                    np.asarray(x, dtype=np.complex128 if np.iscomplexobj(x) else np.float64)
                )
            )
        )
        for x in jax.tree.leaves(tree)
        if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)
    )


def check_robustness(
    case: Case,
    dtypes: tuple[str, ...] = ("float32", "bfloat16", "float16"),
    libraries: tuple[str, ...] = ("optref", "optax"),
    steps: int = 2,
    backend: str = "cpu",
) -> list[Finding]:
    """Feed each special gradient for ``steps`` steps; report any non-finite update or state."""
    if "value_fn" in case.extra_args:
        return []
    problem = PROBLEMS[case.problems[0]]
    findings = []
    deviation = case.deviation("robustness")
    for library in libraries:
        if library == "optax" and case.optax is None:
            continue
        tx = build(case, library)
        for dtype in dtypes:
            params = problem.init(jnp.dtype(dtype))

            @jax.jit
            def step(params: object, state: object, grads: object) -> tuple:
                extra = {"value": jnp.zeros([], dtype)} if "value" in case.extra_args else {}
                if "grad" in case.extra_args:
                    extra["grad"] = grads
                updates, state = tx.update(grads, state, params, **extra)
                return step_params(params, updates, case.step_scale), state, updates

            for kind in GRADIENT_KINDS:
                grads = special_gradient(params, kind)
                p, state = params, tx.init(params)
                for index in range(steps):
                    p, state, updates = step(p, state, grads)
                    if not (_finite(updates) and _finite(state)):
                        ours = library == "optref"
                        if ours and deviation is not None:
                            break
                        findings.append(
                            Finding(
                                case=case.name,
                                check="robustness",
                                severity="error" if ours else "warning",
                                library=library,
                                summary=f"{library}: non-finite update or state at step {index} "
                                f"with {kind} {dtype} gradients",
                                backend=backend,
                                dtype=dtype,
                                problem=problem.name,
                                step=index,
                                measured={"gradient": kind},
                            )
                        )
                        break
    return findings

"""The Adam family, sign methods and trust ratios of optref-core against Optax, in float64.

Every case of ``optref.core._cases_adaptive.ADAPTIVE_CASES`` runs for 50 steps on the
runner's quadratic, Rosenbrock and MLP problems, real and (where the case says so)
complex, gathered in one tree so that each case compiles once (every transform here acts
leaf by leaf, so the problems do not interact). Both libraries get optref's params and
the same gradient at every step; updates and states must agree leaf by leaf and step by
step to the case's ``rtol``, relative to each leaf's root mean square. Where a case
records a float64 deviation, the test checks the claim instead.
"""

from __future__ import annotations

import warnings
from fractions import Fraction
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

optax = pytest.importorskip("optax")

from optref.audit import PROBLEMS, build, descent_gradient  # noqa: E402
from optref.core._case import Case  # noqa: E402
from optref.core._cases_adaptive import ADAPTIVE_CASES  # noqa: E402
from optref.core._radam import rectification  # noqa: E402

STEPS = 50
# Compiling dominates on problems this small; XLA's backend optimisations buy nothing.
_FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def _runs(case: Case) -> dict[str, Any]:
    """``{"quadratic-float64": params, "quadratic-complex128": params, ...}`` for the case."""
    runs = {}
    for dtype in (jnp.float64, jnp.complex128):
        for name in case.problems:
            problem = PROBLEMS[name]
            if dtype == jnp.float64 or (case.complex_params and problem.supports_complex):
                runs[f"{name}-{jnp.dtype(dtype).name}"] = problem.init(dtype)
    return runs


def _loss(params: dict[str, Any]) -> jax.Array:
    return sum(PROBLEMS[run.split("-")[0]].loss(p) for run, p in params.items())


#: The gradient of every run at once: one compilation shared by all the cases.
_GRADIENT = jax.jit(lambda params: descent_gradient(_loss, params))


def _trajectories(case: Case) -> tuple[Any, ...]:
    """optref's and Optax's updates and states at every step, stacked on axis 0."""
    params = _runs(case)
    # A tree-valued argument (a mask) applies to each run of the gathered tree.
    trees = {k: {run: v for run in params} for k, v in case.kwargs.items() if isinstance(v, dict)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ours, theirs = build(case, "optref", **trees), build(case, "optax", **trees)

    def step(grads: Any, s_ours: Any, s_theirs: Any, params: Any) -> tuple[Any, ...]:
        u_ours, s_ours = ours.update(grads, s_ours, params)
        u_theirs, s_theirs = theirs.update(grads, s_theirs, params)
        params = jax.tree.map(lambda p, u: p + case.step_scale * u, params, u_ours)
        return u_ours, u_theirs, s_ours, s_theirs, params

    s_ours, s_theirs = ours.init(params), theirs.init(params)
    lowered = jax.jit(step).lower(_GRADIENT(params), s_ours, s_theirs, params)
    compiled = lowered.compile(compiler_options=_FAST_COMPILE)
    history = []
    for _ in range(STEPS):
        u_ours, u_theirs, s_ours, s_theirs, params = compiled(
            _GRADIENT(params), s_ours, s_theirs, params
        )
        history.append((u_ours, u_theirs, s_ours, s_theirs))
    return jax.tree.map(lambda *xs: np.stack(xs), *jax.device_get(history))


def _by_path(tree: Any) -> dict[str, np.ndarray]:
    return {
        jax.tree_util.keystr(path): np.asarray(leaf)
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
    }


def _error(ours: np.ndarray, theirs: np.ndarray) -> float:
    """The largest over steps of ``max |a - b| / max(rms a, rms b)`` (axis 0 is the step)."""
    if ours.dtype.kind in "biu":
        return 0.0 if np.array_equal(ours, theirs) else np.inf
    axes = tuple(range(1, ours.ndim))
    diff = np.max(np.abs(ours - theirs), axis=axes) if axes else np.abs(ours - theirs)
    rms = [
        np.sqrt(np.mean(np.abs(x) ** 2, axis=axes)) if axes else np.abs(x) for x in (ours, theirs)
    ]
    scale = np.maximum(np.maximum(*rms), np.finfo(np.float64).tiny)
    return float(np.max(np.where(diff == 0, 0.0, diff / scale)))


def case_errors(case: Case) -> dict[str, float]:
    """The largest relative error over 50 steps of the updates and of every state leaf,
    keyed ``"updates"`` and ``"state<path>"``; optref's values must all be finite."""
    u_ours, u_theirs, s_ours, s_theirs = (_by_path(t) for t in _trajectories(case))
    assert u_ours.keys() == u_theirs.keys() and s_ours.keys() == s_theirs.keys(), (
        f"{case.name}: state layouts differ: {sorted(s_ours)} vs {sorted(s_theirs)}"
    )
    assert all(np.all(np.isfinite(v)) for v in [*u_ours.values(), *s_ours.values()])
    errors = {"updates": max(_error(u_ours[k], u_theirs[k]) for k in u_ours)}
    errors.update({f"state{k}": _error(s_ours[k], s_theirs[k]) for k in s_ours})
    return errors


def _float64_deviation(case: Case) -> bool:
    return case.deviation("float64") is not None


@pytest.mark.parametrize("case", ADAPTIVE_CASES, ids=lambda case: case.name)
def test_float64_agreement_with_optax(case: Case) -> None:
    errors = case_errors(case)
    worst = max(errors.values())
    if _float64_deviation(case):
        # RAdam: Optax's rho_t loses digits to cancellation; the states (which do not
        # involve rho_t) still agree exactly, the updates to Optax's rounding error.
        assert max(v for k, v in errors.items() if k != "updates") <= case.rtol, errors
        assert errors["updates"] < 1e-9, errors
        return
    assert worst <= case.rtol, {k: v for k, v in errors.items() if v > case.rtol}


def test_every_adaptive_case_is_checked_against_optax() -> None:
    names = [case.name for case in ADAPTIVE_CASES]
    assert len(names) == len(set(names))
    assert all(case.optax is not None and case.step_scale for case in ADAPTIVE_CASES)
    transforms = {c.optref for c in ADAPTIVE_CASES if c.step_scale < 0}
    assert len(transforms) == 12


def _exact_rectification(b2: float, t: int) -> float:
    b = Fraction(b2)
    rho_inf = 2 / (1 - b) - 1
    rho = rho_inf - 2 * t * b**t / (1 - b**t)
    return float((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho)) ** 0.5


@pytest.mark.parametrize("b2", [0.99, 0.999, 0.9999])
def test_radam_rectification_is_exact_where_optax_cancels(b2: float) -> None:
    """The deviation's claim, measured against exact rational arithmetic."""
    for t in (5, 6, 10, 50, 1000):
        exact = _exact_rectification(b2, t)
        if not np.isfinite(exact) or exact == 0:
            continue
        r, applies = rectification(jnp.float64(b2), t, 4.0)
        assert bool(applies)
        np.testing.assert_allclose(float(r), exact, rtol=4e-16)
    # Optax's textbook formula at b2 = 0.9999, t = 5 in float64 is off by about 1e-9.
    b2t = jnp.float64(0.9999) ** 5
    rho_inf = 2 / (1 - 0.9999) - 1
    rho = rho_inf - 2 * 5 * b2t / (1 - b2t)
    optax_r = jnp.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
    assert abs(float(optax_r) / _exact_rectification(0.9999, 5) - 1) > 1e-10

"""optref-core's adaptive transforms, utilities and aliases against Optax, in float64.

Every case of ``optref.core._cases_misc.MISC_CASES`` is run for 50 steps on the runner's
problems it names (``optref.audit.PROBLEMS``: a quadratic in a vector and a scalar, the
4-d Rosenbrock function, a 3-8-1 tanh network), with real and (where the case says so)
complex params; all the runs of a case share one params tree, so each case compiles once.
Both libraries get the same params, the same gradient (conjugated for complex params)
and the same ``value`` at every step; the params follow optref's updates. Updates and
states must agree leaf by leaf, per step, to the case's ``rtol`` measured against each
leaf's root mean square. Deviations recorded in a case are checked for what they claim
instead (see ``_EXPECTED``, ``_LOOSE_RTOL``, ``_NEGATIVE_VARIANCE_IN_OPTAX``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

optax = pytest.importorskip("optax")

import optref.core as oc  # noqa: E402
from optref.audit import PROBLEMS, resolve_name  # noqa: E402
from optref.audit._together import FAST_COMPILE  # noqa: E402
from optref.core._case import Call, Case  # noqa: E402
from optref.core._cases_misc import MISC_CASES  # noqa: E402

STEPS = 50

# -- building both libraries' transformations ----------------------------------------


def _build(case: Case, library: str) -> Any:
    kwargs = dict(case.kwargs if library == "optref" else (case.optax_kwargs or case.kwargs))
    for key, value in kwargs.items():
        if isinstance(value, Call):
            kwargs[key] = resolve_name(getattr(value, library))(**value.kwargs)
    factory = resolve_name(case.optref if library == "optref" else case.optax)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return factory(**kwargs)


# -- what a deviation changes in the comparison --------------------------------------

# Rprop: optref's update is the step Optax computes and stores but does not return.
_EXPECTED: dict[str, Callable[[Any, Any], Any]] = {
    "core.scale_by_rprop": lambda updates, state: state.prev_updates,
    "core.rprop": lambda updates, state: jax.tree.map(jnp.negative, state[0].prev_updates),
}
# Optax takes the root of a variance that rounding made negative: NaN for real params
# (those elements are left out), an imaginary root for complex ones (their updates are
# left out; the states are still compared).
_NEGATIVE_VARIANCE_IN_OPTAX = {"core.scale_by_stddev-eps_outside"}


def _optax_variance_resolves(case: Case, state: Any) -> Any:
    """Per element and step: whether Optax's $\\hat\\nu - |\\hat\\mu|^2$ (from its own
    state, stacked over steps) is accurate enough for its update to agree to ``case.rtol``.

    Rounding $\\hat\\nu$ and $\\hat\\mu^2$ before subtracting leaves an error of about
    $\\varepsilon\\hat\\nu$ in the variance $v$, which moves the update
    $g/(\\sqrt v + \\epsilon)$ by a relative $\\varepsilon\\hat\\nu / (\\sqrt v\\,(\\sqrt v +
    \\epsilon))$ (a derivative of the root); optref forms $v$ without the subtraction
    (exactly 0 on the first bias-corrected step). Elements where that estimate exceeds a
    tenth of ``rtol`` measure Optax's cancellation, not a disagreement, and are left out.
    """
    decay, eps = case.kwargs["decay"], case.kwargs["eps"]
    correction = 1.0 - decay ** np.asarray(state.count, np.float64)

    def leaf(mu: np.ndarray, nu: np.ndarray) -> np.ndarray:
        c = correction.reshape((-1,) + (1,) * (mu.ndim - 1))
        mu_hat, nu_hat = mu / c, np.real(nu) / c
        root = np.sqrt(np.maximum(nu_hat - np.abs(mu_hat) ** 2, 0.0))
        moved = np.finfo(np.float64).eps * nu_hat
        return moved <= 0.1 * case.rtol * root * (root + eps)

    return jax.tree.map(leaf, state.mu, state.nu)


# Optax's float32 Adafactor decay schedule: agreement to float32's precision only.
_LOOSE_RTOL = {
    "core.scale_by_factored_rms-default_decay": 1e-6,
    "core.adafactor": 1e-6,
    "core.adafactor-momentum": 1e-6,
}


def _leaves_by_path(tree: Any) -> dict[str, np.ndarray]:
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        out[jax.tree_util.keystr(path)] = np.asarray(_unwrap(leaf))
    return out


def _relative_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    """max |a - b| over the root mean square of b (per leaf and step)."""
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    if ours.dtype == bool or np.issubdtype(ours.dtype, np.integer):
        return 0.0 if np.array_equal(ours, theirs) else np.inf
    # Axis 0 is the step: each step's leaf is measured against its own RMS.
    axes = tuple(range(1, ours.ndim))
    diff = np.abs(ours - theirs).max(axis=axes) if axes else np.abs(ours - theirs)
    rms = np.sqrt(np.mean(np.abs(theirs) ** 2, axis=axes)) if axes else np.abs(theirs)
    if np.isnan(diff).any() or np.isnan(rms).any():
        return np.inf
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(diff == 0, 0.0, diff / np.maximum(rms, np.finfo(np.float64).tiny))
    return float(np.max(rel))


def _problem_params(case: Case) -> dict[str, Any]:
    """One tree holding every run of the case: ``{"quadratic-float64": params, ...}``.

    The runs are independent problems (the loss is their sum, so each leaf gets its own
    problem's gradient); gathering them into one tree compiles each case once.
    """
    runs = {}
    for problem in case.problems:
        if problem in PROBLEMS:
            runs[f"{problem}-float64"] = PROBLEMS[problem].init(jnp.float64)
    if case.complex_params:
        for problem in case.problems:
            if problem in PROBLEMS and PROBLEMS[problem].supports_complex:
                runs[f"{problem}-complex128"] = PROBLEMS[problem].init(jnp.complex128)
    return runs


def _total_loss(params: dict[str, Any]) -> jax.Array:
    return sum(PROBLEMS[run.split("-")[0]].loss(p) for run, p in params.items())


# Compiling dominates the run time of these small problems, and XLA's backend
# optimisations buy nothing here (FAST_COMPILE, the audit's options for the same).
# Compiled once per set of runs and shared by every case on it.
_value_and_grad = jax.jit(jax.value_and_grad(_total_loss), compiler_options=FAST_COMPILE)


def _trajectory(case: Case) -> tuple[Any, Any, Any, Any]:
    """Both libraries' updates and states at every step (stacked on axis 0)."""
    ours, theirs = _build(case, "optref"), _build(case, "optax")
    expected = _EXPECTED.get(case.name)

    def step(grad: Any, value: Any, params: Any, state_ours: Any, state_theirs: Any) -> Any:
        extra = {"value": value} if "value" in case.extra_args else {}
        u_ours, state_ours = ours.update(grad, state_ours, params, **extra)
        u_theirs, state_theirs = theirs.update(grad, state_theirs, params, **extra)
        if expected is not None:
            u_theirs = expected(u_theirs, state_theirs)
        params = jax.tree.map(lambda p, u: p + case.step_scale * u, params, u_ours)
        return params, (u_ours, u_theirs, state_ours, state_theirs)

    step = jax.jit(step, compiler_options=FAST_COMPILE)
    params = _problem_params(case)
    state_ours, state_theirs = ours.init(params), theirs.init(params)
    history = []
    for _ in range(STEPS):
        value, grad = _value_and_grad(params)
        # The conjugate of jax.grad is the descent direction for complex params.
        grad = jax.tree.map(jnp.conj, grad)
        params, record = step(grad, value, params, state_ours, state_theirs)
        state_ours, state_theirs = record[2], record[3]
        history.append(record)
    return jax.tree.map(lambda *xs: np.stack([np.asarray(_unwrap(x)) for x in xs]), *history)


def _unwrap(x: Any) -> Any:
    if jnp.issubdtype(jnp.asarray(x).dtype, jax.dtypes.prng_key):
        return jax.random.key_data(x)
    return x


def case_errors(case: Case) -> dict[str, tuple[float, float]]:
    """``{run: (max relative update error, max relative state error)}`` over 50 steps.

    A run is a problem and a dtype (``"mlp-complex128"``). State leaves that belong to no
    run (step counts, keys) count for every run. See :data:`_NEGATIVE_VARIANCE_IN_OPTAX`
    and :func:`_optax_variance_resolves` for the updates left out.
    """
    u_ours, u_theirs, s_ours, s_theirs = _trajectory(case)
    ours_u, theirs_u = _leaves_by_path(u_ours), _leaves_by_path(u_theirs)
    ours_s, theirs_s = _leaves_by_path(s_ours), _leaves_by_path(s_theirs)
    assert ours_u.keys() == theirs_u.keys(), (sorted(ours_u), sorted(theirs_u))
    assert ours_s.keys() == theirs_s.keys(), (sorted(ours_s), sorted(theirs_s))
    bad = [k for k, v in {**ours_u, **ours_s}.items() if not np.all(np.isfinite(v))]
    assert not bad, f"{case.name}: optref's updates or states are not finite at {bad}"
    if case.name in _NEGATIVE_VARIANCE_IN_OPTAX:
        resolves = _leaves_by_path(_optax_variance_resolves(case, s_theirs))
        for key, theirs in theirs_u.items():
            keep = np.isfinite(theirs) & ("complex" not in key) & resolves[key]
            theirs_u[key], ours_u[key] = np.where(keep, theirs, 0), np.where(keep, ours_u[key], 0)
    runs = list(_problem_params(case))
    errors = {run: [0.0, 0.0] for run in runs}
    for column, (ours, theirs) in enumerate(((ours_u, theirs_u), (ours_s, theirs_s))):
        for key in ours:
            error = _relative_error(ours[key], theirs[key])
            for run in [r for r in runs if f"['{r}']" in key] or runs:
                errors[run][column] = max(errors[run][column], error)
    return {run: (u, s) for run, (u, s) in errors.items()}


@pytest.mark.parametrize("case", MISC_CASES, ids=lambda case: case.name)
def test_float64_agreement_with_optax(case: Case) -> None:
    rtol = _LOOSE_RTOL.get(case.name, case.rtol)
    errors = case_errors(case)
    assert errors
    worst = {run: err for run, err in errors.items() if max(err) > rtol}
    assert not worst, f"{case.name}: relative errors above {rtol:g}: {worst}"


def test_every_misc_case_is_checked_against_optax() -> None:
    names = [case.name for case in MISC_CASES]
    assert len(names) == len(set(names))
    assert all(case.optax is not None for case in MISC_CASES)
    assert all(case.optref.startswith("optref.core.") for case in MISC_CASES)


def test_default_adafactor_decay_differs_from_optax_at_float32_precision_only() -> None:
    case = next(c for c in MISC_CASES if c.name == "core.scale_by_factored_rms-default_decay")
    update_error, state_error = case_errors(case)["mlp-float64"]
    assert 1e-12 < max(update_error, state_error) < 1e-6


def test_noise_stream_is_optax_stream() -> None:
    params = {"a": jnp.ones((3, 2)), "b": None, "c": jnp.zeros(4, jnp.complex128)}
    ours = resolve_name("optref.core.add_noise")(0.1, 0.5, key=7)
    theirs = optax.add_noise(0.1, 0.5, key=7)
    s_ours, s_theirs = ours.init(params), theirs.init(params)
    for _ in range(3):
        u_ours, s_ours = ours.update(params, s_ours)
        u_theirs, s_theirs = theirs.update(params, s_theirs)
        for a, b in zip(jax.tree.leaves(u_ours), jax.tree.leaves(u_theirs), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_scale_gradient_matches_optax() -> None:
    scale_gradient = resolve_name("optref.core.scale_gradient")
    x = {"w": jnp.arange(3.0), "v": jnp.ones(2)}

    def loss(fn: Callable[[Any, Any], Any], x: Any, s: Any) -> jax.Array:
        y = fn(x, s)
        return jnp.sum(y["w"] ** 2) + jnp.sum(jnp.sin(y["v"]))

    for s in (0.0, 1.0, -0.5, 3.0):
        ours = jax.grad(loss, argnums=1)(scale_gradient, x, s)
        theirs = jax.grad(loss, argnums=1)(optax.scale_gradient, x, s)
        for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-15)


def test_centered_rmsprop_on_complex_params_gets_the_real_root_where_optax_rotates() -> None:
    """On the first bias-corrected step the centred variance E|g|^2 - |E g|^2 is exactly
    zero; rounded, it is about -1e-16. Optax keeps its complex params' second moment complex
    and takes a complex square root of the negative difference: an imaginary root that
    rotates and shrinks the step (STDDEV_NEGATIVE_VARIANCE). optref keeps the moment real and
    the variance at zero, so the step is -lr g / eps, as the formula gives."""
    params = jnp.array([1.0 + 2.0j, -0.5 + 0.3j, 2.0 - 1.0j, 0.7 + 0.1j, -1.2 - 0.8j])
    grads = jnp.conj(params - (0.5 - 0.2j))
    kwargs = {"centered": True, "bias_correction": True, "eps_in_sqrt": False, "eps": 1e-8}
    ratios = {}
    for name, module in (("optref", oc), ("optax", optax)):
        tx = module.rmsprop(0.01, **kwargs)
        updates, _ = tx.update(grads, tx.init(params), params)
        ratios[name] = np.asarray(updates / grads)
    expected = -0.01 / 1e-8
    error = {name: np.max(np.abs(r / expected - 1)) for name, r in ratios.items()}
    print(f"max relative error of u / g against -lr / eps: {error}")
    np.testing.assert_allclose(ratios["optref"], expected, rtol=1e-14)
    assert error["optax"] > 0.1


@pytest.mark.parametrize(
    ("name", "kwargs", "rtol"),
    [
        # Adafactor's default decay is computed in float32 by Optax (FACTORED_DECAY_FLOAT32).
        ("adafactor", {"learning_rate": 0.05}, 1e-6),
        ("lamb", {"learning_rate": 0.05, "weight_decay": 0.01}, 1e-12),
        ("lars", {"learning_rate": 0.05, "weight_decay": 0.01}, 1e-12),
    ],
)
def test_block_norms_of_big_leaves_agree_with_optax(name: str, kwargs: dict, rtol: float) -> None:
    """A leaf of 2**17 elements, whose block norms take the one-pass unscaled sum of
    squares, and one of 300, whose norms are scaled: 5 steps of each optimizer agree with
    Optax's, in float64 and in float32 (where Optax's own rounding sets the tolerance)."""
    keys = jax.random.split(jax.random.key(3), 2)
    for dtype, tolerance in ((jnp.float64, rtol), (jnp.float32, 4e-6)):
        params = {
            "w": jax.random.normal(keys[0], (256, 512), dtype),
            "b": jax.random.normal(keys[1], (300,), dtype),
        }
        ours, theirs = getattr(oc, name)(**kwargs), getattr(optax, name)(**kwargs)

        @jax.jit
        def steps(params, ours=ours, theirs=theirs):
            s_ours, s_theirs, history = ours.init(params), theirs.init(params), []
            for _ in range(5):
                grads = jax.tree.map(lambda p: jnp.sin(3 * p) + 0.1, params)
                u_ours, s_ours = ours.update(grads, s_ours, params)
                u_theirs, s_theirs = theirs.update(grads, s_theirs, params)
                history.append((u_ours, u_theirs))
                params = oc.apply_updates(params, u_ours)
            return history

        history = steps(params)
        for key in params:
            ours_k, theirs_k = (np.stack([np.asarray(u[i][key]) for u in history]) for i in (0, 1))
            error = _relative_error(ours_k, theirs_k)
            assert error < tolerance, (dtype, key, error)

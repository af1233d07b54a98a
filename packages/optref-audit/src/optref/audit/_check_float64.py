"""float64 agreement: optref and Optax, same inputs, updates and states at every step."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from optref.core.conformance import Case

from ._cases import build
from ._findings import Finding
from ._first_step import check_first_step_derivative
from ._metrics import leaf_relative_error, tree_relative_error
from ._problems import PROBLEMS
from ._reproducer import optax_reproducer
from ._trajectory import Run, Trajectory, flatten_state, run_forced, run_trajectories
from ._versions import applicable_deviation

__all__ = ["check_float64", "problem_variants"]


def problem_variants(case: Case) -> list[tuple[str, jnp.dtype]]:
    """The (problem, dtype) pairs the case runs on in float64: real, and complex where asked."""
    variants = []
    for name in case.problems:
        variants.append((name, jnp.dtype(jnp.float64)))
        if case.complex_params and PROBLEMS[name].supports_complex:
            variants.append((name, jnp.dtype(jnp.complex128)))
    return variants


def _first_difference(case: Case, ours: Trajectory, theirs: Trajectory) -> tuple | None:
    for step, (u_ours, u_theirs) in enumerate(zip(ours.updates, theirs.updates, strict=True)):
        error = tree_relative_error(u_ours, u_theirs)
        if error > case.rtol:
            return step, "updates", error
        s_ours, s_theirs = flatten_state(ours.states[step]), flatten_state(theirs.states[step])
        if set(s_ours) != set(s_theirs):
            missing = sorted(set(s_theirs) - set(s_ours))
            extra = sorted(set(s_ours) - set(s_theirs))
            return step, f"state layout (only in Optax: {missing}; only in optref: {extra})", None
        for path in sorted(s_theirs):
            error = leaf_relative_error(s_ours[path], s_theirs[path])
            if error > case.rtol:
                return step, f"state{path}", error
    return None


def check_float64(
    case: Case, backend: str = "cpu", first_step_derivative: bool = True
) -> list[Finding]:
    """Run optref and Optax side by side in float64 and report the first disagreement.

    optref runs its trajectory; Optax is fed optref's params and gradients at every step
    (identical inputs), with its own state.

    A disagreement covered by a recorded deviation (for the installed Optax version) is
    an Optax finding with the deviation's reason and link; any other is an error. Where
    the first updates agree, on real params, so must their derivatives with respect to
    the gradient (:func:`check_first_step_derivative`; ``first_step_derivative=False``
    leaves that out).

    Compiled without XLA's backend optimisations
    (:data:`~optref.audit._together.FAST_COMPILE`: it halves the check's time, and the
    tolerances are far above the rounding it changes), except where the case's update
    runs a line search: its branch decisions compare loss values that agree to rounding,
    so they follow the rounding of the program, and the two libraries are compared as
    users compile them.
    """
    if case.optax is None:
        return []
    findings = []
    fast = "value_fn" not in case.extra_args
    variants = problem_variants(case)
    references = [
        Run(
            build(case, "optref"),
            PROBLEMS[name],
            PROBLEMS[name].init(dtype),
            case.step_scale,
            case.extra_args,
        )
        for name, dtype in variants
    ]
    # Every variant's run in one program per step, then Optax on every variant's inputs.
    ours_all: list[Trajectory] = []
    for run in run_trajectories(references, case.steps, fast_compile=fast):
        if isinstance(run, Exception):
            raise run
        ours_all.append(run)
    try:
        optax_tx = build(case, "optax")
    except Exception as error:  # the installed Optax's factory refuses the case's arguments
        theirs_all: list[Trajectory | Exception] = [error] * len(references)
    else:
        theirs_all = run_forced(
            [(optax_tx, ref, ours) for ref, ours in zip(references, ours_all, strict=True)],
            fast_compile=fast,
        )
    first_steps = []
    for (name, dtype), ours, theirs in zip(variants, ours_all, theirs_all, strict=True):
        problem = PROBLEMS[name]
        if isinstance(theirs, Exception):  # an Optax that cannot build the case or run it
            findings.append(
                Finding(
                    case=case.name,
                    check="float64",
                    severity="error",
                    library="optax",
                    summary=f"Optax raised {type(theirs).__name__} on {name} ({dtype.name}): "
                    f"{theirs}"[:500],
                    backend=backend,
                    dtype=dtype.name,
                    problem=name,
                    reproducer=optax_reproducer(case, name, dtype, 0),
                )
            )
            continue
        runs = [ours, theirs]
        difference = _first_difference(case, *runs)
        first_agrees = difference is None or difference[0] > 0
        real = not jnp.issubdtype(dtype, jnp.complexfloating)
        if first_step_derivative and first_agrees and real:
            first_steps.append((problem, ours.params[0], ours.grads[0]))
        if difference is None:
            continue
        step, where, error = difference
        check = "first_step" if step == 0 else "float64"
        deviation = applicable_deviation(case, check) or applicable_deviation(case, "float64")
        measured = {
            "step": step,
            "where": where,
            "relative_error": error,
            "rtol": case.rtol,
            "optax_over_optref": _projection(runs[1].updates[step], runs[0].updates[step]),
            "optref_update": _short(runs[0].updates[step]),
            "optax_update": _short(runs[1].updates[step]),
        }
        summary = (
            f"{'first step' if step == 0 else f'step {step}'}: {where} differ"
            + (f" (relative error {error:.3g} > {case.rtol:g})" if error is not None else "")
            + f" on {name} ({dtype.name})"
        )
        findings.append(
            Finding(
                case=case.name,
                check=check,
                severity="warning" if deviation else "error",
                library="optax" if deviation else "both",
                summary=summary + (f": {deviation.reason}" if deviation else ""),
                backend=backend,
                dtype=dtype.name,
                problem=name,
                step=step,
                measured=measured,
                reproducer=optax_reproducer(case, name, dtype, step),
                link=deviation.link if deviation else "",
            )
        )
    if first_steps:
        findings.extend(
            check_first_step_derivative(case, first_steps, backend=backend, fast_compile=fast)
        )
    return findings


def _projection(theirs: object, ours: object) -> float:
    """$\\mathrm{Re}\\langle u_r, u\\rangle / \\lVert u_r\\rVert^2$ ($u_r$ optref's update, $u$
    Optax's): the factor by which Optax's update scales optref's, where one is a multiple
    of the other (an optimistic first step of $(\\alpha + \\beta) g_0$ for $\\alpha g_0$
    gives $(\\alpha + \\beta)/\\alpha$)."""
    pairs = list(zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True))
    inner = sum(float(np.vdot(np.asarray(a), np.asarray(b)).real) for a, b in pairs)
    norm = sum(float(np.vdot(np.asarray(a), np.asarray(a)).real) for a, _ in pairs)
    return inner / norm if norm > 0 else float("nan")


def _short(tree: object) -> str:
    text = repr(jax.tree.map(lambda x: np.asarray(x).tolist(), tree))
    return text if len(text) < 400 else text[:400] + "..."

"""CUTEst's unconstrained problems solved by optref's and Optax's L-BFGS and SciPy's L-BFGS-B.

Every unconstrained minimisation problem that sif2jax packages, at its default size and
from its standard start, up to ``--max-n`` variables, is solved in float64 by

- ``optref.linesearch.lbfgs()`` (memory 10, zoom line search),
- ``optax.lbfgs()`` (the same algorithm, Optax 0.2.8),
- ``scipy.optimize.minimize(method="L-BFGS-B")`` (memory 10, no bounds),

each reusing the line search's value and gradient (``value_and_grad_from_state``), and
stopped as soon as $\\lVert\\nabla f(x_k)\\rVert_2 \\le 10^{-6} \\max(1,
\\lVert\\nabla f(x_0)\\rVert_2)$ (then *solved*) or after ``--max-iter`` iterations, a
line search that takes no step, or (SciPy) its own line-search failure. For each
problem the table gives whether it was solved, the iterations, and the function and
gradient evaluations (the L-BFGS line searches evaluate both at every trial, so the
counts are equal). It writes ``docs/linesearch_cutest.md``::

    python docs/examples/cutest_lbfgs.py --max-n 100 --output docs/linesearch_cutest.md

sif2jax's package ``__init__`` imports every problem, constrained ones included (one of
which builds its data at import, tens of seconds); :func:`load_problems` imports only
the unconstrained ones.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import statistics
import sys
import time
import types
from collections.abc import Iterable
from typing import Any

import jax

jax.config.update("jax_enable_x64", True)  # before sif2jax builds its float64 constants

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import scipy.optimize  # noqa: E402

import optref.linesearch  # noqa: E402

GRADIENT_RTOL = 1e-6
MEMORY = 10
_PACKAGE = "sif2jax.cutest._unconstrained_minimisation"


def load_problems(names: Iterable[str] | None = None) -> list[Any]:
    """The sif2jax unconstrained problems (all, or those named), without the constrained ones.

    The parent packages ``sif2jax`` and ``sif2jax.cutest`` are stood in by empty package
    modules while the problem modules load, so their ``__init__`` files (which import
    every problem) do not run; the stand-ins are removed afterwards.
    """
    spec = importlib.util.find_spec("sif2jax")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("sif2jax is not installed")
    root = spec.submodule_search_locations[0]
    packages = {"sif2jax": root, "sif2jax.cutest": f"{root}/cutest"}
    if names is not None:
        packages[_PACKAGE] = f"{root}/cutest/_unconstrained_minimisation"
    added = []
    for name, path in packages.items():
        if name not in sys.modules:
            module = types.ModuleType(name)
            module.__path__ = [path]
            sys.modules[name] = module
            added.append(name)
    try:
        if names is None:
            return list(importlib.import_module(_PACKAGE).unconstrained_minimisation_problems)
        problems = []
        for name in names:
            module = importlib.import_module(f"{_PACKAGE}.{name.lower()}")
            problems.append(getattr(module, name)())
        return problems
    finally:
        for name in added:
            del sys.modules[name]


@dataclasses.dataclass
class Result:
    """One solver on one problem."""

    solved: bool
    iterations: int
    function_evaluations: int
    gradient_evaluations: int
    value: float
    grad_norm: float
    note: str = ""


def _objective(problem: Any) -> tuple[Any, jax.Array]:
    args = problem.args
    x0 = jnp.asarray(problem.y0, jnp.float64)
    return (lambda x: jnp.asarray(problem.objective(x, args), jnp.float64)), x0


def _tolerance(fn: Any, x0: jax.Array) -> float:
    return GRADIENT_RTOL * max(1.0, float(jnp.linalg.norm(jax.grad(fn)(x0))))


def solve_lbfgs(library: Any, problem: Any, max_iter: int) -> Result:
    """``library.lbfgs()`` (``optref.linesearch`` or ``optax``) in one jitted loop."""
    fn, x0 = _objective(problem)
    tolerance = _tolerance(fn, x0)
    solver = library.lbfgs(memory_size=MEMORY)
    value_and_grad = library.value_and_grad_from_state(fn)

    def keep_going(carry: tuple) -> jax.Array:
        k, _, _, grad_norm, _, stuck = carry
        return (k < max_iter) & (grad_norm > tolerance) & ~stuck

    def step(carry: tuple) -> tuple:
        k, x, state, _, evaluations, _ = carry
        value, grad = value_and_grad(x, state=state)
        updates, state = solver.update(grad, state, x, value=value, grad=grad, value_fn=fn)
        search = state[2]
        # The line search evaluated value and gradient at each trial, the last at x + u.
        grad_norm = jnp.linalg.norm(search.grad)
        evaluations = evaluations + search.info.num_linesearch_steps.astype(jnp.int32)
        return k + 1, x + updates, state, grad_norm, evaluations, search.learning_rate == 0

    def solve(x0: jax.Array) -> tuple:
        grad_norm = jnp.linalg.norm(jax.grad(fn)(x0))
        start = (jnp.int32(0), x0, solver.init(x0), grad_norm, jnp.int32(1), jnp.bool_(False))
        return jax.lax.while_loop(keep_going, step, start)

    k, x, _, grad_norm, evaluations, stuck = jax.jit(solve)(x0)
    solved = bool(grad_norm <= tolerance)
    note = "" if solved else ("no step" if bool(stuck) else "max iter")
    return Result(
        solved, int(k), int(evaluations), int(evaluations), float(fn(x)), float(grad_norm), note
    )


def solve_scipy(problem: Any, max_iter: int) -> Result:
    """SciPy's L-BFGS-B (no bounds), stopped by the same gradient test."""
    fn, x0 = _objective(problem)
    tolerance = _tolerance(fn, x0)
    value_and_grad = jax.jit(jax.value_and_grad(fn))
    last: dict[str, Any] = {}

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = value_and_grad(jnp.asarray(x))
        last["x"], last["grad"] = np.array(x), np.asarray(grad, np.float64)
        return float(value), last["grad"]

    def callback(intermediate_result: Any) -> None:
        x = intermediate_result.x
        grad = (
            last["grad"]
            if np.array_equal(last.get("x"), x)
            else np.asarray(jax.grad(fn)(jnp.asarray(x)))
        )
        last["norm"] = float(np.linalg.norm(grad))
        if last["norm"] <= tolerance:
            raise StopIteration

    result = scipy.optimize.minimize(
        fun,
        np.asarray(x0),
        jac=True,
        method="L-BFGS-B",
        callback=callback,
        options={
            "maxiter": max_iter,
            "maxcor": MEMORY,
            "gtol": 0.0,
            "ftol": 0.0,
            "maxfun": 50 * max_iter,
        },
    )
    grad_norm = float(np.linalg.norm(jax.grad(fn)(jnp.asarray(result.x))))
    solved = grad_norm <= tolerance
    note = "" if solved else ("max iter" if result.nit >= max_iter else "line search")
    return Result(
        solved,
        int(result.nit),
        int(result.nfev),
        int(result.njev),
        float(result.fun),
        grad_norm,
        note,
    )


SOLVERS = {
    "optref": lambda problem, max_iter: solve_lbfgs(optref.linesearch, problem, max_iter),
    "optax": lambda problem, max_iter: solve_lbfgs(optax, problem, max_iter),
    "scipy": solve_scipy,
}


def run(problems: list[Any], max_iter: int, verbose: bool = True) -> list[dict[str, Any]]:
    """Solve each problem with each solver; one row per problem."""
    rows = []
    for problem in problems:
        row: dict[str, Any] = {"problem": problem.name, "n": int(problem.num_variables())}
        start = time.process_time()
        for name, solve in SOLVERS.items():
            try:
                row[name] = solve(problem, max_iter)
            except Exception as error:
                row[name] = Result(
                    False, 0, 0, 0, float("nan"), float("nan"), f"error: {type(error).__name__}"
                )
        row["cpu_seconds"] = time.process_time() - start
        rows.append(row)
        if verbose:
            marks = " ".join(
                f"{name}={'ok' if row[name].solved else 'no'}/{row[name].iterations}"
                for name in SOLVERS
            )
            print(
                f"{row['problem']:>12} n={row['n']:<5} {marks} ({row['cpu_seconds']:.1f} s CPU)",
                flush=True,
            )
    return rows


def _cell(result: Result) -> str:
    mark = "yes" if result.solved else f"no ({result.note})"
    f, g = result.function_evaluations, result.gradient_evaluations
    return f"{mark} | {result.iterations} | {f if f == g else f'{f}/{g}'}"


def markdown(rows: list[dict[str, Any]], command: str, skipped: list[str]) -> str:
    """The table, a summary, and the command that regenerates them."""
    solved = {name: sum(row[name].solved for row in rows) for name in SOLVERS}
    both = [row for row in rows if all(row[name].solved for name in SOLVERS)]
    same = sum(
        row["optref"].iterations == row["optax"].iterations
        and row["optref"].function_evaluations == row["optax"].function_evaluations
        for row in rows
    )
    lines = [
        "# L-BFGS on CUTEst: optref, Optax and SciPy",
        "",
        "Generated by `docs/examples/cutest_lbfgs.py`; regenerate with",
        "",
        "```bash",
        command,
        "```",
        "",
        f"The {len(rows)} unconstrained CUTEst problems of sif2jax with at most "
        f"{max(row['n'] for row in rows)} variables, at their default sizes and standard "
        "starts, in float64. Solved: $\\lVert\\nabla f(x_k)\\rVert_2 \\le 10^{-6}\\max(1, "
        "\\lVert\\nabla f(x_0)\\rVert_2)$ within the iteration limit. optref and Optax run "
        "`lbfgs()` (memory 10, zoom line search, value and gradient reused from the line "
        "search); SciPy runs L-BFGS-B (memory 10, no bounds). *it*: iterations; *evals*: "
        "function evaluations, which are also the gradient evaluations (each line-search "
        "trial evaluates both) unless a second count follows a slash.",
        "",
        "| solver | solved | median iterations (solved by all) | median evaluations "
        "(solved by all) |",
        "|---|---|---|---|",
    ]
    for name in SOLVERS:
        its = [row[name].iterations for row in both]
        evals = [row[name].function_evaluations for row in both]
        lines.append(
            f"| {name} | {solved[name]} / {len(rows)} | "
            f"{statistics.median(its) if its else '-'} | "
            f"{statistics.median(evals) if evals else '-'} |"
        )
    lines += [
        "",
        f"optref and Optax take the same iterations and evaluations on {same} of "
        f"{len(rows)} problems; where they differ, the run reached a curvature pair that "
        "optref rejects (see `scale_by_lbfgs`).",
        "",
        "| problem | n | optref solved | it | evals | Optax solved | it | evals | "
        "SciPy solved | it | evals |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = " | ".join(_cell(row[name]) for name in SOLVERS)
        lines.append(f"| {row['problem']} | {row['n']} | {cells} |")
    if skipped:
        lines += ["", f"Not run (more than the size limit): {len(skipped)} problems."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-n", type=int, default=100, help="largest number of variables")
    parser.add_argument("--max-iter", type=int, default=1000)
    parser.add_argument("--problems", default=None, help="comma-separated names (default all)")
    parser.add_argument("--output", default=None, help="markdown file to write")
    options = parser.parse_args(argv)
    names = options.problems.split(",") if options.problems else None
    problems = load_problems(names)
    chosen = sorted(
        (p for p in problems if p.num_variables() <= options.max_n),
        key=lambda p: (p.num_variables(), p.name),
    )
    skipped = sorted(p.name for p in problems if p.num_variables() > options.max_n)
    rows = run(chosen, options.max_iter)
    command = "python docs/examples/cutest_lbfgs.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    text = markdown(rows, command.strip(), skipped)
    if options.output:
        with open(options.output, "w") as handle:
            handle.write(text)
    else:
        print(text)


if __name__ == "__main__":
    main()

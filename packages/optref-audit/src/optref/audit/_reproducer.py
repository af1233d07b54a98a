"""Minimal reproducers that use Optax alone, for the findings about Optax."""

from __future__ import annotations

import inspect
from typing import Any

import jax.numpy as jnp

from optref.core.conformance import Call, Case

from . import _problems

__all__ = [
    "optax_derivative_reproducer",
    "optax_first_step_jvp_reproducer",
    "optax_low_precision_reproducer",
    "optax_reproducer",
    "optax_robustness_reproducer",
    "optax_schedule_reproducer",
    "optax_wrapper_reproducer",
]


def _literal(value: Any) -> str:
    if isinstance(value, Call):
        args = ", ".join(f"{k}={_literal(v)}" for k, v in value.kwargs.items())
        if value.optax.startswith("optax."):
            return f"{value.optax}({args})"
        return f"{value.optax.rsplit('.', 1)[-1]}({args})  # from {value.optax}"
    return repr(value)


def _problem_source(name: str) -> str:
    problem = _problems.PROBLEMS[name]
    init_source = inspect.getsource(problem.init)
    loss_source = inspect.getsource(problem.loss)
    return init_source + "\n\n" + loss_source


def _preamble(case: Case, problem: str, dtype: jnp.dtype) -> list[str]:
    """The imports, the problem's source, its initial params and the Optax transformation."""
    kwargs = case.arguments("optax")
    args = ", ".join(f"{k}={_literal(v)}" for k, v in kwargs.items())
    fns = _problems.PROBLEMS[problem]
    return [
        "import jax, jax.numpy as jnp, numpy as np, optax",
        'jax.config.update("jax_enable_x64", True)',
        f"_QUAD_DIAG = np.array({_problems._QUAD_DIAG.tolist()})",
        f"_QUAD_CENTER = np.array({_problems._QUAD_CENTER.tolist()})",
        "_MLP_X = np.random.default_rng(0).normal(size=(16, 3))",
        "_MLP_Y = np.sin(_MLP_X @ np.array([1.0, -2.0, 0.5]))[:, None]",
        "Any = Array = PyTree = object",
        "",
        _problem_source(problem),
        "",
        f"params = {fns.init.__name__}(jnp.{jnp.dtype(dtype).name})",
        f"opt = {case.optax}({args})",
    ]


def _extra(case: Case, loss: str, grads: str) -> str:
    extra = []
    if "value" in case.extra_args:
        extra.append(f"value={loss}(params)")
    if "grad" in case.extra_args:
        extra.append(f"grad={grads}")
    if "value_fn" in case.extra_args:
        extra.append(f"value_fn={loss}")
    return (", " + ", ".join(extra)) if extra else ""


def optax_reproducer(case: Case, problem: str, dtype: jnp.dtype, step: int | None) -> str:
    """A short Python script, with Optax as its only optimizer library, that shows the finding.

    It builds the Optax transformation of ``case``, runs it on ``problem`` in ``dtype`` and
    prints the update at ``step``; the finding's ``measured`` numbers say what optref gives.
    """
    if case.optax is None:
        return ""
    loss = _problems.PROBLEMS[problem].loss.__name__
    lines = [
        *_preamble(case, problem, dtype),
        "state = opt.init(params)",
        *_steps(case, loss, str((step or 0) + 1)),
        'print("update at step", step, updates)',
    ]
    return "\n".join(lines)


def optax_first_step_jvp_reproducer(case: Case, problem: str) -> str:
    """A script, with Optax alone, that prints the derivative of the first update with
    respect to the gradient along the check's direction, in float64."""
    if case.optax is None:
        return ""
    loss = _problems.PROBLEMS[problem].loss.__name__
    lines = [
        *_preamble(case, problem, jnp.dtype(jnp.float64)),
        "state = opt.init(params)",
        f"grads = jax.tree.map(jnp.conj, jax.grad({loss})(params))",
        "rng = np.random.default_rng(0)",
        "v = jax.tree.map(lambda g: jnp.asarray(rng.normal(size=g.shape), g.dtype), grads)",
        "",
        "def first_update(g):",
        f"    return opt.update(g, state, params{_extra(case, loss, 'g')})[0]",
        "",
        "print(jax.jvp(first_update, (grads,), (v,))[1])",
    ]
    return "\n".join(lines)


def _steps(case: Case, loss: str, count: str, indent: str = "") -> list[str]:
    """``count`` steps of ``opt`` from ``params`` and ``state``, the gradient of ``loss``."""
    return [
        f"{indent}for step in range({count}):",
        f"{indent}    grads = jax.tree.map(jnp.conj, jax.grad({loss})(params))",
        f"{indent}    updates, state = opt.update(grads, state, params"
        f"{_extra(case, loss, 'grads')})",
        f"{indent}    params = jax.tree.map(lambda p, u: p + {case.step_scale!r} * u, params,"
        " updates)",
    ]


def optax_robustness_reproducer(
    case: Case, problem: str, dtype: jnp.dtype, kind: str, step: int
) -> str:
    """A script, with Optax alone, that feeds the robustness check's ``kind`` of gradient
    (zero, tiny: the smallest normal, huge: a tenth of the root of the largest finite
    value; alternating in sign) in ``dtype`` and prints whether the updates and the state
    are finite at each step up to ``step``."""
    if case.optax is None:
        return ""
    magnitude = {
        "zero": "0.0",
        "tiny": "float(info.tiny)",
        "huge": "0.1 * float(np.sqrt(float(info.max)))",
    }[kind]
    extra = []
    if "value" in case.extra_args:
        extra.append("value=jnp.zeros([], jnp.real(jax.tree.leaves(params)[0]).dtype)")
    if "grad" in case.extra_args:
        extra.append("grad=grads")
    extra_text = (", " + ", ".join(extra)) if extra else ""
    lines = [
        *_preamble(case, problem, dtype),
        "",
        "def special(p):",
        "    info = jnp.finfo(p.dtype)",
        "    signs = jnp.where(jnp.arange(p.size).reshape(p.shape) % 2 == 0, 1.0, -1.0)",
        f"    return (signs * {magnitude}).astype(p.dtype)",
        "",
        "finite = lambda tree: all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(tree)",
        "                          if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact))",
        "grads = jax.tree.map(special, params)",
        "state = opt.init(params)",
        f"for step in range({step + 1}):",
        f"    updates, state = opt.update(grads, state, params{extra_text})",
        f"    params = jax.tree.map(lambda p, u: (p + {case.step_scale!r} * u).astype(p.dtype),"
        " params, updates)",
        '    print("step", step, "finite updates:", finite(updates),',
        '          "finite state:", finite(state))',
    ]
    return "\n".join(lines)


def optax_low_precision_reproducer(case: Case, problem: str, dtype: jnp.dtype, step: int) -> str:
    """A script, with Optax alone, that runs the float64 trajectory to ``step``, rounds its
    params, gradient and state to ``dtype``, and prints the error of the ``dtype`` update
    against the float64 update of the same rounded values, in epsilons of ``dtype``
    (``rms(u - u64) / rms(u64) / eps``, the check's metric; the check's reference is
    optref's float64 update, which agrees with Optax's)."""
    if case.optax is None:
        return ""
    low = jnp.dtype(dtype).name
    loss = _problems.PROBLEMS[problem].loss.__name__
    lines = [
        *_preamble(case, problem, jnp.dtype(jnp.float64)),
        "state = opt.init(params)",
        *_steps(case, loss, str(step)),
        "",
        "def cast(tree, dtype):",
        "    def leaf(x):",
        "        x = jnp.asarray(x)",
        "        if jnp.issubdtype(x.dtype, jnp.complexfloating):",
        "            return x.astype(jnp.promote_types(dtype, jnp.complex64))",
        "        return x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x",
        "    return jax.tree.map(leaf, tree)",
        "",
        f"low_params = cast(params, jnp.{low})",
        f"low_grads = cast(jax.tree.map(jnp.conj, jax.grad({loss})(params)), jnp.{low})",
        "low_state = jax.tree.map(lambda s, t: jnp.asarray(s).astype(jnp.asarray(t).dtype),",
        "                         state, opt.init(low_params))",
        "# Both updates compiled, as in a training step.",
        "update = jax.jit(lambda grads, state, params: opt.update(grads, state, params"
        f"{_extra(case, loss, 'grads')}))",
        "u_low, _ = update(low_grads, low_state, low_params)",
        "up = lambda tree: cast(tree, jnp.float64)",
        "u_64, _ = update(up(low_grads), up(low_state), up(low_params))",
        "flat = lambda tree: np.concatenate([np.ravel(np.asarray(x, np.complex128))"
        " for x in jax.tree.leaves(tree)])",
        "a, e = flat(u_low), flat(u_64)",
        "error = np.sqrt(np.mean(np.abs(a - e) ** 2)) / np.sqrt(np.mean(np.abs(e) ** 2))",
        f'print("one-step {low} error at step {step}:",'
        f' error / float(jnp.finfo(jnp.{low}).eps), "eps")',
    ]
    return "\n".join(lines)


def optax_wrapper_reproducer(
    case: Case, problem: str, dtype: jnp.dtype, form: str, static: tuple[str, ...]
) -> str:
    """A script, with Optax alone, that runs the plain transformation and its wrapped
    ``form`` (``"chain(identity(), tx)"``, ``"masked(tx, all true)"`` or
    ``"inject_hyperparams(factory)(**kwargs)"``, ``static`` its ``static_args``) in one
    jitted step each and prints where their updates first differ."""
    if case.optax is None:
        return ""
    kwargs = case.arguments("optax")
    args = ", ".join(f"{k}={_literal(v)}" for k, v in kwargs.items())
    wrapped = {
        "chain(identity(), tx)": "optax.chain(optax.identity(), opt)",
        "masked(tx, all true)": "optax.masked(opt, lambda p: jax.tree.map(lambda _: True, p))",
        "inject_hyperparams(factory)(**kwargs)": (
            f"optax.inject_hyperparams({case.optax}, static_args={static!r})({args})"
        ),
    }[form]
    loss = _problems.PROBLEMS[problem].loss.__name__
    lines = [
        *_preamble(case, problem, dtype),
        f"wrapped = {wrapped}",
        "",
        "def stepper(tx):",
        "    @jax.jit",
        "    def step(params, state):",
        f"        grads = jax.tree.map(jnp.conj, jax.grad({loss})(params))",
        f"        updates, state = tx.update(grads, state, params{_extra(case, loss, 'grads')})",
        f"        return jax.tree.map(lambda p, u: p + {case.step_scale!r} * u, params, updates),"
        " state, updates",
        "    return step",
        "",
        "runs = [(opt, params, opt.init(params)), (wrapped, params, wrapped.init(params))]",
        "steps = [stepper(tx) for tx, _, _ in runs]",
        "for k in range(10):",
        "    outs = [step(p, s) for step, (_, p, s) in zip(steps, runs)]",
        "    runs = [(tx, p, s) for (tx, _, _), (p, s, _) in zip(runs, outs)]",
        "    difference = max(float(jnp.max(jnp.abs(a - b))) for a, b in",
        "                     zip(jax.tree.leaves(outs[0][2]), jax.tree.leaves(outs[1][2])))",
        '    print("step", k, "max difference of the updates:", difference)',
    ]
    return "\n".join(lines)


def optax_derivative_reproducer(
    case: Case, problem: str, steps: int, target: str, value: float | None = None
) -> str:
    """A script, with Optax alone, that differentiates the loss after ``steps`` steps with
    respect to ``target`` (``"params"``, along a random direction, or a hyperparameter of
    the factory, at ``value``) in float64, and prints reverse mode, forward mode and a
    central difference."""
    if case.optax is None:
        return ""
    kwargs = dict(case.arguments("optax"))
    loss = _problems.PROBLEMS[problem].loss.__name__
    others = ", ".join(f"{k}={_literal(v)}" for k, v in kwargs.items() if k != target)
    if target == "params":
        point = "x = params"
        build = f"    opt = {case.optax}({others})"
        start = "    params = x"
        direction = (
            "rng = np.random.default_rng(0)\n"
            "v = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), x)\n"
            "along = lambda f, t: f(jax.tree.map(lambda a, b: a + t * b, x, v))\n"
            "reverse = sum(jnp.vdot(g, d) for g, d in zip(jax.tree.leaves(jax.grad(loss_after)(x)),"
            " jax.tree.leaves(v)))"
        )
    else:
        point = f"x = jnp.float64({value!r})"
        separator = ", " if others else ""
        build = f"    opt = {case.optax}({others}{separator}{target}=x)"
        start = "    params = params0"
        direction = "v = 1.0\nalong = lambda f, t: f(x + t * v)\nreverse = jax.grad(loss_after)(x)"
    lines = [
        *_preamble(case, problem, jnp.dtype(jnp.float64))[:-1],
        "params0 = params",
        "",
        "def loss_after(x):",
        build,
        start,
        "    state = opt.init(params)",
        *_steps(case, loss, str(steps), indent="    "),
        f"    return {loss}(params)",
        "",
        point,
        direction,
        "forward = jax.jvp(lambda t: along(loss_after, t), (0.0,), (1.0,))[1]",
        "h = 1e-6",
        "central = (along(loss_after, h) - along(loss_after, -h)) / (2 * h)",
        'print("reverse", reverse, "forward", forward, "central difference", central)',
    ]
    return "\n".join(lines)


def optax_schedule_reproducer(case: Case, step: int) -> str:
    """A script, with Optax alone, that prints the value of the case's schedule at
    ``step`` (an int64 count, as the check evaluates it)."""
    if case.optax is None:
        return ""
    kwargs = case.arguments("optax")
    args = ", ".join(f"{k}={_literal(v)}" for k, v in kwargs.items())
    return "\n".join(
        [
            "import jax, jax.numpy as jnp, optax",
            'jax.config.update("jax_enable_x64", True)',
            f"schedule = {case.optax}({args})",
            f"print(schedule(jnp.asarray({step}, jnp.int64)))",
        ]
    )

"""Minimal reproducers that use Optax alone, for the findings about Optax."""

from __future__ import annotations

import inspect
from typing import Any

import jax.numpy as jnp

from optref.core.conformance import Call, Case

from . import _problems

__all__ = ["optax_first_step_jvp_reproducer", "optax_reproducer"]


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
    kwargs = case.kwargs if case.optax_kwargs is None else case.optax_kwargs
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
        f"for step in range({(step or 0) + 1}):",
        f"    grads = jax.tree.map(jnp.conj, jax.grad({loss})(params))",
        f"    updates, state = opt.update(grads, state, params{_extra(case, loss, 'grads')})",
        f"    params = jax.tree.map(lambda p, u: p + {case.step_scale!r} * u, params, updates)",
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

"""Minimal reproducers that use Optax alone, for the findings about Optax."""

from __future__ import annotations

import inspect
from typing import Any

import jax.numpy as jnp

from optref.core.conformance import Call, Case

from . import _problems

__all__ = ["optax_reproducer"]


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


def optax_reproducer(case: Case, problem: str, dtype: jnp.dtype, step: int | None) -> str:
    """A short Python script, with Optax as its only optimizer library, that shows the finding.

    It builds the Optax transformation of ``case``, runs it on ``problem`` in ``dtype`` and
    prints the update at ``step``; the finding's ``measured`` numbers say what optref gives.
    """
    if case.optax is None:
        return ""
    kwargs = case.kwargs if case.optax_kwargs is None else case.optax_kwargs
    args = ", ".join(f"{k}={_literal(v)}" for k, v in kwargs.items())
    fns = _problems.PROBLEMS[problem]
    lines = [
        "import jax, jax.numpy as jnp, numpy as np, optax",
        'jax.config.update("jax_enable_x64", True)',
        f"_QUAD_DIAG = np.array({_problems._QUAD_DIAG.tolist()})",
        f"_QUAD_CENTER = np.array({_problems._QUAD_CENTER.tolist()})",
        "_MLP_X = np.random.default_rng(0).normal(size=(16, 3))",
        "_MLP_Y = np.sin(_MLP_X @ np.array([1.0, -2.0, 0.5]))[:, None]",
        "Array = PyTree = object",
        "",
        _problem_source(problem),
        "",
        f"params = {fns.init.__name__}(jnp.{jnp.dtype(dtype).name})",
        f"opt = {case.optax}({args})",
        "state = opt.init(params)",
        f"for step in range({(step or 0) + 1}):",
        f"    grads = jax.tree.map(jnp.conj, jax.grad({fns.loss.__name__})(params))",
    ]
    extra = []
    if "value" in case.extra_args:
        extra.append(f"value={fns.loss.__name__}(params)")
    if "grad" in case.extra_args:
        extra.append("grad=grads")
    if "value_fn" in case.extra_args:
        extra.append(f"value_fn={fns.loss.__name__}")
    extra_text = (", " + ", ".join(extra)) if extra else ""
    lines += [
        f"    updates, state = opt.update(grads, state, params{extra_text})",
        f"    params = jax.tree.map(lambda p, u: p + {case.step_scale!r} * u, params, updates)",
        'print("update at step", step, updates)',
    ]
    return "\n".join(lines)

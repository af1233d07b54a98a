"""Robustness: zero, tiny and huge gradients give no NaN or Inf, in every float dtype."""

from __future__ import annotations

import functools
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from optref.core.conformance import Case

from ._cases import build
from ._findings import Finding
from ._problems import PROBLEMS
from ._reproducer import optax_robustness_reproducer
from ._together import call_together
from ._trajectory import step_params

__all__ = ["GRADIENT_KINDS", "MAY_BE_INFINITE", "check_robustness", "special_gradient"]

GRADIENT_KINDS = ("zero", "tiny", "huge")

#: State fields that hold +inf by design, by the name of their state class (the same in
#: optref and Optax). ``reduce_on_plateau`` starts ``best_value`` at +inf, Optax's
#: documented "nothing monitored yet", and keeps it there until its first decision,
#: ``accumulation_size`` updates later (the float64 check holds optref to Optax's +inf).
#: Only +inf is allowed there: NaN or -inf is still reported.
MAY_BE_INFINITE: dict[str, tuple[str, ...]] = {"ReduceLROnPlateauState": ("best_value",)}


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


def _is_sentinel_state(node: object) -> bool:
    return type(node).__name__ in MAY_BE_INFINITE


def _without_sentinels(tree: object) -> object:
    """``tree`` with the +inf of the fields in :data:`MAY_BE_INFINITE` replaced by 0."""

    def clear(node: Any) -> Any:
        if not _is_sentinel_state(node):
            return node
        fields = MAY_BE_INFINITE[type(node).__name__]
        values = [np.asarray(getattr(node, field)) for field in fields]
        return eqx.tree_at(
            lambda n: [getattr(n, field) for field in fields],
            node,
            [np.where(np.isposinf(v), np.zeros_like(v), v) for v in values],
        )

    return jax.tree.map(clear, tree, is_leaf=_is_sentinel_state)


def _finite(tree: object) -> bool:
    tree = _without_sentinels(tree)
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


def _pick(leaf: Any, k: int, index: int) -> Any:
    return leaf[k, index] if isinstance(leaf, jax.Array | np.ndarray) else leaf


def _runs(
    tx: Any, params: Any, grads: Any, step_scale: float, extra_args: tuple[str, ...], steps: int
) -> tuple[Any, Any]:
    """``steps`` steps from ``params`` with the same gradient at each, for a batch of
    gradients (leading axis); the updates and states of every step, stacked."""

    def run(grads: Any) -> tuple[Any, Any]:
        p, state = params, tx.init(params)
        all_updates, all_states = [], []
        for _ in range(steps):
            extra: dict[str, Any] = {}
            if "value" in extra_args:
                extra["value"] = jnp.zeros([], jnp.real(jax.tree.leaves(p)[0]).dtype)
            if "grad" in extra_args:
                extra["grad"] = grads
            updates, state = tx.update(grads, state, p, **extra)
            p = step_params(p, updates, step_scale)
            all_updates.append(updates)
            all_states.append(state)
        stack = functools.partial(jax.tree.map, lambda *xs: jnp.stack(xs))
        return stack(*all_updates), stack(*all_states)

    return jax.vmap(run)(grads)


def check_robustness(
    case: Case,
    dtypes: tuple[str, ...] = ("float32", "bfloat16", "float16"),
    libraries: tuple[Literal["optref", "optax"], ...] = ("optref", "optax"),
    steps: int = 2,
    backend: str = "cpu",
) -> list[Finding]:
    """Feed each special gradient for ``steps`` steps; report any non-finite update or state."""
    if "value_fn" in case.extra_args:
        return []
    problem = PROBLEMS[case.problems[0]]
    findings = []
    deviation = case.deviation("robustness")
    # One program for every library and dtype; within each, the gradient kinds are a batch.
    labels, calls = [], []
    for library in libraries:
        if library == "optax" and case.optax is None:
            continue
        tx = build(case, library)
        for dtype in dtypes:
            params = problem.init(jnp.dtype(dtype))
            grads = [special_gradient(params, kind) for kind in GRADIENT_KINDS]
            batched = jax.tree.map(lambda *leaves: jnp.stack(leaves), *grads)
            labels.append((library, dtype))
            calls.append((_runs, (tx, params, batched, case.step_scale, case.extra_args, steps)))
    results = call_together(calls, fast_compile=True)
    for (library, dtype), result in zip(labels, results, strict=True):
        if isinstance(result, Exception):
            raise result
        updates, states = jax.device_get(result)
        for k, kind in enumerate(GRADIENT_KINDS):
            for index in range(steps):
                pick = functools.partial(_pick, k=k, index=index)
                if _finite(jax.tree.map(pick, updates)) and _finite(jax.tree.map(pick, states)):
                    continue
                ours = library == "optref"
                if not (ours and deviation is not None):
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
                            reproducer=""
                            if ours
                            else optax_robustness_reproducer(
                                case, problem.name, jnp.dtype(dtype), kind, index
                            ),
                        )
                    )
                break
    return findings

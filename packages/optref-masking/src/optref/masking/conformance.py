"""Conformance cases of optref-masking against Optax (plain data; run by optref.audit).

Inner transformations, masks and labels are :class:`Call` arguments, built separately
for each library: masks and labels are functions of the params defined in this package
(:func:`ndim_mask`, :func:`ndim_labels`, :func:`path_mask`, :func:`path_labels`), which
Optax's ``masked`` and ``partition`` accept as they are.
"""

from __future__ import annotations

from typing import Any

from optref.core.conformance import Call, Case, Deviation

__all__ = ["CASES", "Call", "Case", "Deviation", "group"]

# Transforms that are not descent directions are applied as params - 0.01 * updates; the
# updates that a mask passes through are then plain gradient steps.
_T = -0.01
_M = "optref.masking._mask_functions"
# wrapper_invariance=False where a mask or labels are a function: the wrapper check's
# inject_hyperparams(factory)(**kwargs) would take that function for a schedule (in both
# libraries). masked(tx, all true) is bit-identical to tx: see the package's tests.


def group(pattern: str, transformation: Any) -> tuple[str, Any]:
    """A ``(pattern, transformation)`` pair of :func:`param_groups`, built by a :class:`Call`."""
    return pattern, transformation


def _tx(name: str, **kwargs: Any) -> Call:
    """The same transformation in both libraries: ``optref.core.<name>`` / ``optax.<name>``."""
    return Call(f"optref.core.{name}", f"optax.{name}", kwargs)


def _fn(name: str, **kwargs: Any) -> Call:
    """A mask or label function of this package, the same for both libraries."""
    return Call(f"{_M}.{name}", f"{_M}.{name}", kwargs)


def _dict(**items: Any) -> Call:
    """A dict whose values are built per library (``transforms`` of a partition)."""
    return Call("builtins.dict", "builtins.dict", items)


CASES: list[Case] = [
    Case(
        "masking.masked-scale_by_adam-ndim",
        "optref.masking.masked",
        {"inner": _tx("scale_by_adam"), "mask": _fn("ndim_mask", min_ndim=1)},
        "optax.masked",
        step_scale=_T,
        wrapper_invariance=False,
    ),
    Case(
        "masking.masked-adam-ndim",
        "optref.masking.masked",
        {"inner": _tx("adam", learning_rate=0.01), "mask": _fn("ndim_mask", min_ndim=2)},
        "optax.masked",
        problems=("mlp",),
        step_scale=_T,
        wrapper_invariance=False,
    ),
    Case(
        "masking.masked-trace-prefix",
        "optref.masking.masked",
        {"inner": _tx("trace", decay=0.9), "mask": {"hidden": True, "head": False}},
        "optax.masked",
        problems=("mlp",),
        step_scale=_T,
        complex_params=True,
    ),
    Case(
        "masking.masked-add_decayed_weights-path",
        "optref.masking.masked",
        {
            "inner": _tx("add_decayed_weights", weight_decay=0.1),
            "mask": _fn("path_mask", pattern=r".*w"),
        },
        "optax.masked",
        problems=("quadratic", "mlp"),
        step_scale=_T,
        wrapper_invariance=False,
    ),
    Case(
        "masking.freeze",
        "optref.masking.freeze",
        {"mask": {"hidden": {"w": True, "b": False}, "head": True}},
        "optax.freeze",
        problems=("mlp",),
        step_scale=_T,
    ),
    Case(
        "masking.selective_transform",
        "optref.masking.selective_transform",
        {
            "optimizer": _tx("adam", learning_rate=0.01),
            "freeze_mask": {"hidden": {"w": True, "b": False}, "head": False},
        },
        "optax.selective_transform",
        problems=("mlp",),
        complex_params=True,
    ),
    Case(
        "masking.partition-ndim",
        "optref.masking.partition",
        {
            "transforms": _dict(
                matrix=_tx("adam", learning_rate=0.01),
                vector=_tx("sgd", learning_rate=0.05, momentum=0.9),
            ),
            "param_labels": _fn("ndim_labels"),
        },
        "optax.partition",
        problems=("mlp",),
        complex_params=True,
        wrapper_invariance=False,
    ),
    Case(
        "masking.partition-prefix",
        "optref.masking.partition",
        {
            "transforms": _dict(
                a=_tx("adamw", learning_rate=0.01, weight_decay=0.05),
                b=_tx("sgd", learning_rate=0.05),
            ),
            "param_labels": {"hidden": "a", "head": {"w": "a", "b": "b"}},
        },
        "optax.partition",
        problems=("mlp",),
    ),
    Case(
        "masking.multi_transform",
        "optref.masking.multi_transform",
        {
            "transforms": _dict(
                vector=_tx("adam", learning_rate=0.01),
                scalar=_tx("sgd", learning_rate=0.05, momentum=0.5),
            ),
            "param_labels": _fn("ndim_labels"),
        },
        "optax.multi_transform",
        problems=("quadratic",),
        wrapper_invariance=False,
    ),
    Case(
        "masking.param_groups",
        "optref.masking.param_groups",
        {
            "groups": _dict(
                weights=Call(
                    "optref.masking.conformance.group",
                    "optref.masking.conformance.group",
                    {"pattern": r".*\.w", "transformation": _tx("adam", learning_rate=0.01)},
                ),
                head=Call(
                    "optref.masking.conformance.group",
                    "optref.masking.conformance.group",
                    {"pattern": r"head\..*", "transformation": _tx("sgd", learning_rate=0.05)},
                ),
            ),
            "default": _tx("sgd", learning_rate=0.02, momentum=0.9),
        },
        "optax.partition",
        optax_kwargs={
            "transforms": _dict(
                weights=_tx("adam", learning_rate=0.01),
                head=_tx("sgd", learning_rate=0.05),
                default=_tx("sgd", learning_rate=0.02, momentum=0.9),
            ),
            "param_labels": Call(
                "optref.masking.path_labels",
                "optref.masking.path_labels",
                {"patterns": {"weights": r".*\.w", "head": r"head\..*"}, "default": "default"},
            ),
        },
        problems=("mlp",),
        complex_params=True,
        wrapper_invariance=False,
    ),
]

"""An alias's errors name the alias and the argument the user passed, not its members'.

``signum(0.1, beta=2.0)`` is rejected by its ``ema`` member, whose field is ``decay``;
the error must say ``signum: beta ...`` and where the value went. Ambiguous values keep
the member's message; traced values (``jit``, ``vmap``) are unaffected; the decorated
factories keep their signatures and docstrings.
"""

from __future__ import annotations

import inspect
import re
from contextlib import AbstractContextManager
from typing import get_type_hints

import jax
import jax.numpy as jnp
import pytest

import optref.core as oc
from optref.core._alias import alias


def _raises(message: str) -> AbstractContextManager[pytest.ExceptionInfo[oc.HyperparameterError]]:
    """Expect a HyperparameterError whose message is exactly ``message``."""
    return pytest.raises(oc.HyperparameterError, match=f"^{re.escape(message)}$")


@pytest.mark.parametrize(
    ("build", "message", "member"),
    [
        (
            lambda: oc.signum(0.1, beta=2.0),
            "signum: beta must be in [0, 1], got 2.0 (ema's decay).",
            "ema: decay must be in [0, 1], got 2.0.",
        ),
        (
            lambda: oc.adafactor(clipping_threshold=-1.0),
            "adafactor: clipping_threshold must be in (0, ∞], got -1.0 "
            "(clip_by_block_rms's threshold).",
            "clip_by_block_rms: threshold must be in (0, ∞], got -1.0.",
        ),
        (
            lambda: oc.fromage(0.1, min_norm=-1.0),
            "fromage: min_norm must be in [0, ∞], got -1.0.",
            "scale_by_trust_ratio: min_norm must be in [0, ∞], got -1.0.",
        ),
        (
            lambda: oc.adam(1e-3, b1=1.5),
            "adam: b1 must be in [0, 1), got 1.5.",
            "scale_by_adam: b1 must be in [0, 1), got 1.5.",
        ),
    ],
    ids=["signum-beta", "adafactor-clipping_threshold", "fromage-min_norm", "adam-b1"],
)
def test_alias_error_names_the_alias_and_its_argument(build, message, member) -> None:
    with _raises(message) as caught:
        build()
    # Chained from the member's own error, which is unchanged.
    assert isinstance(caught.value.__cause__, oc.HyperparameterError)
    assert str(caught.value.__cause__) == member


def test_alias_error_carries_its_parts_as_data() -> None:
    with pytest.raises(oc.HyperparameterError) as caught:
        oc.signum(0.1, beta=2.0)
    error = caught.value
    assert (error.transformation, error.argument) == ("signum", "beta")
    assert (error.member, error.field) == ("ema", "decay")
    assert error.requirement == "must be in [0, 1], got 2.0"
    assert float(error.value) == 2.0


def test_value_of_two_arguments_keeps_the_members_message() -> None:
    # learning_rate and b1 are both 1.5: which one the member got is ambiguous.
    with _raises("scale_by_adam: b1 must be in [0, 1), got 1.5.") as caught:
        oc.adam(1.5, b1=1.5)
    assert caught.value.__cause__ is None


def test_float32_rounding_still_matches_the_argument() -> None:
    # The member holds float32(1.1) (or 1.1 under x64), not the Python float 1.1.
    with pytest.raises(oc.HyperparameterError, match=r"^signum: beta must be in \[0, 1\]"):
        oc.signum(0.1, beta=1.1)


def test_non_numeric_argument_is_matched_by_identity() -> None:
    with _raises(
        "adam: learning_rate must be a number, an array or a callable count -> value, got 'x'."
    ):
        oc.adam("x")  # pyright: ignore[reportArgumentType]


def test_traced_values_are_unaffected() -> None:
    # Ranges are not checked on tracers: an out-of-range member of a batch builds.
    batch = jax.vmap(lambda beta: oc.signum(0.1, beta=beta))(jnp.array([0.5, 2.0]))
    assert batch.transformations[0].decay.shape == (2,)  # pyright: ignore[reportAttributeAccessIssue]
    # A traced array is matched by identity only, never compared by value.
    with pytest.raises(
        oc.HyperparameterError, match=r"^sgd: momentum must be a scalar, .* \(trace's decay\)\."
    ):
        jax.jit(lambda momentum: oc.sgd(0.1, momentum=momentum))(jnp.ones(3))


def test_signature_and_docstring_are_unchanged() -> None:
    # inspect.signature (and so mkdocstrings and inject_hyperparams) see the factory's own.
    assert str(inspect.signature(oc.adam)) == (
        "(learning_rate: 'ScalarOrSchedule', b1: 'float | Array' = 0.9, "
        "b2: 'float | Array' = 0.999, eps: 'float | Array' = 1e-08, "
        "eps_root: 'float | Array' = 0.0, mu_dtype: 'Any' = None, *, "
        "nesterov: 'bool' = False) -> 'Chain'"
    )
    assert (oc.adam.__name__, oc.adam.__qualname__, oc.adam.__module__) == (
        "adam",
        "adam",
        "optref.core._adam",
    )
    wrapped = oc.adam.__wrapped__  # pyright: ignore[reportFunctionMemberAccess]
    assert oc.adam.__doc__ is not None
    assert oc.adam.__doc__ == wrapped.__doc__
    assert oc.adam.__doc__.startswith("The Adam optimizer: :func:`scale_by_adam` then")


_ALIAS_CODE = alias(lambda: None).__code__


def test_every_alias_in_core_is_decorated() -> None:
    # An alias is a public function that builds a chain from hyperparameters.
    aliases = [
        name
        for name in oc.__all__
        if inspect.isfunction(getattr(oc, name))
        and name != "chain"
        and get_type_hints(getattr(oc, name)).get("return") is oc.Chain
    ]
    assert {"adam", "signum", "adafactor", "fromage", "lamb", "lars", "sgd"} <= set(aliases)
    undecorated = [name for name in aliases if getattr(oc, name).__code__ is not _ALIAS_CODE]
    assert not undecorated, f"decorate these aliases with @alias: {undecorated}"


@pytest.mark.parametrize(
    ("build", "category"),
    [
        (lambda: oc.optimistic_adam(0.1), DeprecationWarning),
        (lambda: oc.noisy_sgd(0.1), UserWarning),
        (lambda: oc.noisy_sgd(0.1, seed=1), DeprecationWarning),
    ],
    ids=["optimistic_adam", "noisy_sgd-no-key", "noisy_sgd-seed"],
)
def test_warnings_of_an_alias_point_to_its_caller(build, category) -> None:
    # The wrapper is one more frame between the alias and its caller.
    with pytest.warns(category) as record:
        build()
    assert [w.filename for w in record] == [__file__]

"""optref.core: Optax's gradient transformations as pure Equinox modules.

Every transformation is an :class:`equinox.Module` whose fields are its
hyperparameters; the Optax-named factory functions build them.
"""

from ._adam import (
    ScaleByAdam,
    ScaleByAdamState,
    adam,
    adamw,
    nadam,
    nadamw,
    scale_by_adam,
)
from ._apply import apply_updates
from ._apply_every import ApplyEvery, ApplyEveryState, apply_every
from ._apply_if_finite import ApplyIfFinite, ApplyIfFiniteState, apply_if_finite, tree_all_finite
from ._base import (
    EmptyState,
    GradientTransformation,
    StateMismatchError,
    check_state,
    params_like,
)
from ._chain import Chain, NamedChain, chain, named_chain
from ._clipping import Clip, ClipByGlobalNorm, clip, clip_by_global_norm
from ._conditional import (
    ConditionallyMask,
    ConditionallyMaskState,
    ConditionallyTransform,
    ConditionallyTransformState,
    conditionally_mask,
    conditionally_transform,
)
from ._flatten import Flatten, flatten, tree_concatenate, tree_split_like
from ._hyperparameters import (
    HyperparameterError,
    ScalarOrSchedule,
    check_range,
    resolve,
)
from ._inject import (
    InjectHyperparams,
    InjectHyperparamsState,
    InjectStatefulHyperparamsState,
    WrappedSchedule,
    WrappedScheduleState,
    inject_hyperparams,
    inject_stateful_hyperparams,
)
from ._lookahead import Lookahead, LookaheadParams, LookaheadState, lookahead
from ._mask_tree import broadcast_mask, broadcast_prefix, is_tree_function
from ._momentum import Trace, TraceState, trace
from ._multi_steps import MultiSteps, MultiStepsState
from ._numerics import bias_correction, compute_dtype, safe_div, safe_increment, safe_norm, safe_sqrt
from ._optimistic import (
    ScaleByOptimisticGradient,
    ScaleByOptimisticGradientState,
    optimistic_gradient_descent,
    scale_by_optimistic_gradient,
)
from ._scale import (
    Scale,
    ScaleByLearningRate,
    ScaleBySchedule,
    ScaleByScheduleState,
    scale,
    scale_by_learning_rate,
    scale_by_schedule,
)
from ._sgd import sgd
from ._skip import ShouldSkipUpdateFunction, skip_large_updates, skip_not_finite
from ._stateless import (
    Identity,
    SetToZero,
    Stateless,
    StatelessWithTreeMap,
    identity,
    set_to_zero,
    stateless,
    stateless_with_tree_map,
)
from ._target_updates import incremental_update, periodic_update
from ._tree import (
    tree_add,
    tree_add_scaled,
    tree_bias_correction,
    tree_cast,
    tree_conj,
    tree_full_like,
    tree_l2_norm,
    tree_map_compute,
    tree_norm,
    tree_ones_like,
    tree_real,
    tree_scale,
    tree_sub,
    tree_sum,
    tree_update_moment,
    tree_update_moment_per_elem_norm,
    tree_vdot,
    tree_where,
    tree_zeros_like,
)
from ._tree_access import (
    KeyPath,
    PathFilter,
    TreeKeyError,
    tree_get,
    tree_get_all,
    tree_get_all_with_path,
    tree_set,
)
from ._tree_check import TreeMismatchError, check_tree_fits, path_str
from ._weight_decay import AddDecayedWeights, WeightDecaySchedule, add_decayed_weights

__all__ = [name for name in dir() if not name.startswith("_")]

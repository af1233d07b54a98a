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
from ._adadelta import ScaleByAdaDeltaState, ScaleByAdadelta, adadelta, scale_by_adadelta
from ._adamax import ScaleByAdamax, adamax, adamaxw, scale_by_adamax
from ._adan import ScaleByAdan, ScaleByAdanState, adan, scale_by_adan
from ._amsgrad import ScaleByAmsgrad, ScaleByAmsgradState, amsgrad, scale_by_amsgrad
from ._apply import apply_updates
from ._apply_every import ApplyEvery, ApplyEveryState, apply_every
from ._apply_if_finite import ApplyIfFinite, ApplyIfFiniteState, apply_if_finite, tree_all_finite
from ._agc import AdaptiveGradClip, adaptive_grad_clip
from ._base import (
    EmptyState,
    GradientTransformation,
    StateMismatchError,
    check_state,
    params_like,
)
from ._belief import ScaleByBelief, ScaleByBeliefState, adabelief, scale_by_belief
from ._block_clipping import ClipByBlockRms, clip_by_block_rms
from ._block_norm import (
    ScaleByParamBlockNorm,
    ScaleByParamBlockRms,
    ScaleByPerLeafFactor,
    scale_by_param_block_norm,
    scale_by_param_block_rms,
)
from ._centralize import Centralize, centralize
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
from ._dog import (
    ScaleByDistanceOverGradients,
    ScaleByDistanceOverGradientsState,
    scale_by_distance_over_gradients,
)
from ._ema import Ema, EmaState, ema
from ._factored import FactoredState, ScaleByFactoredRms, adafactor, scale_by_factored_rms
from ._flatten import Flatten, flatten, tree_concatenate, tree_split_like
from ._fromage import fromage
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
from ._lion import ScaleByLion, ScaleByLionState, lion, scale_by_lion
from ._lookahead import Lookahead, LookaheadParams, LookaheadState, lookahead
from ._mask_tree import broadcast_mask, broadcast_prefix, is_tree_function
from ._momentum import Trace, TraceState, trace
from ._multi_steps import MultiSteps, MultiStepsState
from ._noise import AddNoise, AddNoiseState, add_noise, noisy_sgd
from ._nonnegative import KeepParamsNonnegative, keep_params_nonnegative
from ._normalize import NormalizeByUpdateNorm, normalize_by_update_norm
from ._novograd import ScaleByNovograd, ScaleByNovogradState, novograd, scale_by_novograd
from ._numerics import (
    abs_sq,
    adaptive_ratio,
    bias_correction,
    compute_dtype,
    debiased_momentum,
    moving_average,
    safe_div,
    safe_increment,
    safe_l2_norm,
    safe_norm,
    safe_rms,
    safe_sqrt,
    scalar_dtype,
)
from ._polyak import ScaleByPolyak, polyak_sgd, scale_by_polyak
from ._optimistic import (
    ScaleByOptimisticGradient,
    ScaleByOptimisticGradientState,
    optimistic_gradient_descent,
    scale_by_optimistic_gradient,
)
from ._optimistic_adam import optimistic_adam, optimistic_adam_v2
from ._radam import ScaleByRadam, radam, scale_by_radam
from ._rms import ScaleByRms, ScaleByRmsState, ScaleByRmsWithCountState, scale_by_rms
from ._rmsprop import rmsprop
from ._rprop import ScaleByRprop, ScaleByRpropState, rprop, scale_by_rprop
from ._rss import ScaleByRss, ScaleByRssState, adagrad, scale_by_rss
from ._scale import (
    Scale,
    ScaleByLearningRate,
    ScaleBySchedule,
    ScaleByScheduleState,
    scale,
    scale_by_learning_rate,
    scale_by_schedule,
)
from ._scale_gradient import scale_gradient
from ._sgd import sgd
from ._sign import ScaleBySign, scale_by_sign, sign_sgd, signum
from ._skip import ShouldSkipUpdateFunction, skip_large_updates, skip_not_finite
from ._sm3 import ScaleBySM3State, ScaleBySm3, scale_by_sm3, sm3
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
from ._stddev import (
    ScaleByRStdDevState,
    ScaleByRStdDevWithCountState,
    ScaleByStddev,
    scale_by_stddev,
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
    tree_map_unzip,
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
from ._tree_check import TreeMismatchError, check_real, check_tree_fits, path_str
from ._trust_ratio import ScaleByTrustRatio, lamb, lars, scale_by_trust_ratio
from ._weight_decay import AddDecayedWeights, WeightDecaySchedule, add_decayed_weights
from ._yogi import ScaleByYogi, scale_by_yogi, yogi
from ._zero_nans import ZeroNans, ZeroNansState, zero_nans

__all__ = [name for name in dir() if not name.startswith("_")]

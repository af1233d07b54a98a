"""optref.masking: masks, partitions, frozen parameters and parameter groups.

Optax's ``masked``, ``partition`` (``multi_transform``), ``freeze`` and
``selective_transform`` as optref transformations, and ``param_groups``: optimizers per
group of parameters chosen by regex patterns on their names, as PyTorch users know them.
"""

from ._freeze import Freeze, FreezeLabels, SelectiveTransform, freeze, selective_transform
from ._group_table import NOT_A_PARAMETER
from ._mask_functions import ndim_labels, ndim_mask, path_mask
from ._masked import Masked, MaskedNode, MaskedState, masked
from ._param_groups import DEFAULT_GROUP, ParamGroups, PathLabels, param_groups, path_labels
from ._partition import (
    AbstractPartition,
    MultiTransformState,
    Partition,
    PartitionState,
    multi_transform,
    partition,
)
from ._paths import named_leaves, path_name

__all__ = [
    "DEFAULT_GROUP",
    "NOT_A_PARAMETER",
    "AbstractPartition",
    "Freeze",
    "FreezeLabels",
    "Masked",
    "MaskedNode",
    "MaskedState",
    "MultiTransformState",
    "ParamGroups",
    "Partition",
    "PartitionState",
    "PathLabels",
    "SelectiveTransform",
    "freeze",
    "masked",
    "multi_transform",
    "named_leaves",
    "ndim_labels",
    "ndim_mask",
    "param_groups",
    "partition",
    "path_labels",
    "path_mask",
    "path_name",
    "selective_transform",
]

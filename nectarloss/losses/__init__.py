"""The loss catalog and our own losses.

Importing this package registers every built-in entry: the ``torch.nn`` losses under
their class names (with the aliases ``L1``, ``L2`` and ``MSE``), and ``Sobel``,
``Laplacian`` and ``Perceptual``. Every entry accepts ``reduction="none"``, which the
manager uses when per-sample modifiers need the unreduced loss.
"""

from nectarloss.losses.catalog import (
    AdaptiveLogSoftmaxLoss,
    LossEntry,
    available_losses,
    build_loss,
    check_arity,
    find_loss_entry,
    get_loss_entry,
    loss_aliases,
    register_loss,
    resolve_loss_name,
    unregister_loss,
)
from nectarloss.losses.edges import (
    Laplacian,
    Sobel,
    laplacian_edges,
    laplacian_loss,
    sobel_edges,
    sobel_loss,
)
from nectarloss.losses.perceptual import FeatureKey, Perceptual

__all__ = [
    "AdaptiveLogSoftmaxLoss",
    "FeatureKey",
    "Laplacian",
    "LossEntry",
    "Perceptual",
    "Sobel",
    "available_losses",
    "build_loss",
    "check_arity",
    "find_loss_entry",
    "get_loss_entry",
    "laplacian_edges",
    "laplacian_loss",
    "loss_aliases",
    "register_loss",
    "resolve_loss_name",
    "sobel_edges",
    "sobel_loss",
    "unregister_loss",
]

"""Perceptual loss: a weighted distance between features of a user-supplied extractor.

Nothing is downloaded: the caller brings the feature extractor (a VGG slice, a small
conv net, any callable). It may return one Tensor, a list or tuple of Tensors, or a
dict of Tensors; outputs are addressed by position (``0, 1, ...``) or by dict key.

The extractor is frozen: its parameters get ``requires_grad=False`` (in place, so do
not share parameters with the model being trained) and it stays in eval mode even
when the loss is put in train mode. Target features are computed under
``torch.no_grad()``, so only the prediction receives a gradient.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from nectarloss.losses import Perceptual
    >>> _ = torch.manual_seed(0)
    >>> extractor = nn.Conv2d(3, 4, 3)
    >>> loss = Perceptual(extractor, criterion="l2", reduction="none")
    >>> x = torch.rand(2, 3, 8, 8)
    >>> loss(x, x)
    tensor([0., 0.])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from nectarloss.losses.catalog import register_loss

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["FeatureKey", "Perceptual"]

#: How an extractor output is addressed: its position in a list/tuple, or its dict key.
FeatureKey = int | str
_LayersArg = Sequence[FeatureKey] | Mapping[FeatureKey, float] | None

_CRITERIA = ("l1", "l2")
_REDUCTIONS = ("mean", "sum", "none")


@register_loss(
    "Perceptual",
    doc="Weighted L1/L2 distance between features of a user-supplied extractor.",
)
class Perceptual(nn.Module):
    """Weighted L1 or L2 distance between extractor features of a prediction and a target.

    For every selected output ``k`` of the extractor with weight ``w_k``, the
    per-sample distance is the mean over all non-batch elements of
    ``|f_k(input) - f_k(target)|`` (``"l1"``) or its square (``"l2"``); the per-sample
    loss is ``sum_k w_k * distance_k``, then reduced over the batch.

    Args:
        feature_extractor: An ``nn.Module`` (frozen and kept in eval mode; it moves
            with ``.to()``) or any callable mapping an image batch to a Tensor, a
            list/tuple of Tensors, or a dict of Tensors. Every output must keep the
            batch dimension first.
        layers: Which outputs to compare and how much each counts. ``None`` compares
            every output with weight 1; a sequence of keys (positions or dict keys)
            compares those with weight 1; a mapping ``{key: weight}`` compares those
            keys with the given weights (finite, ``>= 0``).
        criterion: ``"l1"`` or ``"l2"``.
        reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"`` for the
            per-sample loss ``[B]``.

    Raises:
        TypeError: If ``feature_extractor`` is not an ``nn.Module`` or callable, or an
            argument has the wrong type.
        ValueError: If ``layers`` is empty or has an invalid weight, or ``criterion``
            or ``reduction`` is unknown.

    Shape:
        - input: ``[B, *]``, whatever the extractor accepts.
        - target: same as input.
        - output: scalar, or ``[B]`` for ``reduction="none"``.
    """

    def __init__(
        self,
        feature_extractor: nn.Module | Callable[[Tensor], Any],
        layers: _LayersArg = None,
        criterion: str = "l1",
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self.feature_extractor: nn.Module | None
        self._extract_fn: Callable[[Tensor], Any] | None
        if isinstance(feature_extractor, nn.Module):
            feature_extractor.requires_grad_(False)
            feature_extractor.eval()
            self.feature_extractor = feature_extractor
            self._extract_fn = None
        elif callable(feature_extractor):
            self.feature_extractor = None
            self._extract_fn = feature_extractor
        else:
            raise TypeError(
                "Perceptual: `feature_extractor` expected an nn.Module or a callable, "
                f"got {type(feature_extractor).__name__}."
            )
        self.layers = _check_layers(layers)
        self.criterion = _check_choice("criterion", criterion, _CRITERIA)
        self.reduction = _check_choice("reduction", reduction, _REDUCTIONS)

    def train(self, mode: bool = True) -> Self:
        """Set train mode on this module; the feature extractor stays in eval mode."""
        super().train(mode)
        if self.feature_extractor is not None:
            self.feature_extractor.eval()
        return self

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        """Return the perceptual loss between ``input`` and ``target``."""
        if not isinstance(input, Tensor) or not isinstance(target, Tensor):
            bad = input if not isinstance(input, Tensor) else target
            raise TypeError(f"Perceptual: inputs expected Tensors, got {type(bad).__name__}.")
        if input.shape != target.shape:
            raise ValueError(
                f"Perceptual: `target` expected shape {tuple(input.shape)} (the input's), "
                f"got {tuple(target.shape)}."
            )
        pred_features = _as_feature_dict(self._extract(input))
        with torch.no_grad():
            target_features = _as_feature_dict(self._extract(target))
        terms = [
            weight * self._distance(key, pred_features[key], target_features[key])
            for key, weight in self._weights(pred_features).items()
        ]
        per_sample = terms[0]  # never empty: outputs and layers are checked non-empty
        for term in terms[1:]:
            per_sample = per_sample + term
        if self.reduction == "mean":
            return per_sample.mean()
        if self.reduction == "sum":
            return per_sample.sum()
        return per_sample

    def extra_repr(self) -> str:
        """Return the options shown in ``repr``."""
        return f"layers={self.layers!r}, criterion={self.criterion!r}, reduction={self.reduction!r}"

    def _extract(self, x: Tensor) -> Any:
        if self.feature_extractor is not None:
            return self.feature_extractor(x)
        if self._extract_fn is None:  # unreachable: __init__ sets one of the two
            raise TypeError("Perceptual: `feature_extractor` expected a callable, got None.")
        return self._extract_fn(x)

    def _weights(self, features: dict[FeatureKey, Tensor]) -> dict[FeatureKey, float]:
        if self.layers is None:
            return dict.fromkeys(features, 1.0)
        missing = [k for k in self.layers if k not in features]
        if missing:
            raise ValueError(
                f"Perceptual: `layers` expected keys among {tuple(features)}, got {missing[0]!r}."
            )
        return self.layers

    def _distance(self, key: FeatureKey, pred: Tensor, target: Tensor) -> Tensor:
        if pred.dim() == 0 or pred.shape != target.shape:
            raise ValueError(
                f"Perceptual: feature {key!r} expected matching shapes with a batch "
                f"dimension, got {tuple(pred.shape)} and {tuple(target.shape)}."
            )
        diff = pred - target
        elementwise = diff.abs() if self.criterion == "l1" else diff.square()
        return elementwise.reshape(elementwise.shape[0], -1).mean(dim=1)


def _as_feature_dict(output: object) -> dict[FeatureKey, Tensor]:
    if isinstance(output, Tensor):
        features: dict[FeatureKey, Tensor] = {0: output}
    elif isinstance(output, (list, tuple)):
        features = dict(enumerate(output))
    elif isinstance(output, Mapping):
        features = dict(output)
    else:
        raise TypeError(
            "Perceptual: the feature extractor expected to return a Tensor or a "
            f"list/tuple/dict of Tensors, got {type(output).__name__}."
        )
    if not features:
        raise ValueError("Perceptual: the feature extractor expected outputs, got none.")
    for key, value in features.items():
        if not isinstance(value, Tensor):
            raise TypeError(
                f"Perceptual: feature {key!r} expected a Tensor, got {type(value).__name__}."
            )
    return features


def _check_layers(layers: object) -> dict[FeatureKey, float] | None:
    if layers is None:
        return None
    if isinstance(layers, Mapping):
        items = list(layers.items())
    elif isinstance(layers, Sequence) and not isinstance(layers, (str, bytes)):
        items = [(key, 1.0) for key in layers]
    else:
        raise TypeError(
            "Perceptual: `layers` expected None, a sequence of output keys or a "
            f"mapping of keys to weights, got {type(layers).__name__}."
        )
    if not items:
        raise ValueError("Perceptual: `layers` expected at least one output, got an empty one.")
    checked: dict[FeatureKey, float] = {}
    for key, weight in items:
        if isinstance(key, bool) or not isinstance(key, (int, str)):
            raise TypeError(
                f"Perceptual: `layers` expected int or str keys, got {type(key).__name__}."
            )
        if key in checked:
            raise ValueError(f"Perceptual: `layers` expected unique keys, got {key!r} twice.")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise TypeError(
                f"Perceptual: `layers` expected float weights, got {type(weight).__name__} "
                f"for {key!r}."
            )
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError(
                f"Perceptual: `layers` expected finite weights >= 0, got {weight!r} for {key!r}."
            )
        checked[key] = float(weight)
    return checked


def _check_choice(argument: str, value: object, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise TypeError(f"Perceptual: `{argument}` expected a str, got {type(value).__name__}.")
    if value not in choices:
        raise ValueError(
            f"Perceptual: `{argument}` expected one of "
            f"{', '.join(repr(c) for c in choices)}, got {value!r}."
        )
    return value

"""Edge losses: L1 distance between the edge maps of a prediction and a target.

Both losses filter every channel of a ``[B, C, H, W]`` image on its own (a depthwise
3x3 convolution with a fixed kernel) after padding the borders with
``mode="replicate"``, so the image border does not look like an edge: a constant image
has an all-zero edge map.

* :class:`Sobel` compares the Sobel gradient magnitude
  ``sqrt(gx**2 + gy**2 + eps)``. The Euclidean magnitude is rotation invariant, unlike
  ``|gx| + |gy|``, and ``eps`` keeps its gradient finite on flat regions (where
  ``gx = gy = 0``). The kernels are the classic unnormalized ones
  (``[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]`` and its transpose), so a unit step gives
  a gradient of 4.
* :class:`Laplacian` compares the signed 4-neighbour Laplacian response
  (kernel ``[[0, 1, 0], [1, -4, 1], [0, 1, 0]]``).

With ``reduction="none"`` the losses return the per-element map ``[B, C, H, W]``, which
the manager's per-sample reducer averages to ``[B]``.

Example:
    >>> import torch
    >>> from nectarloss.losses import Laplacian, Sobel
    >>> step = torch.tensor([[0.0, 0.0, 1.0]]).expand(3, 3).reshape(1, 1, 3, 3)
    >>> Sobel(eps=0.0)(step, torch.zeros_like(step))
    tensor(2.6667)
    >>> Laplacian()(step, torch.zeros_like(step))
    tensor(0.6667)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from nectarloss.losses.catalog import register_loss
from nectarloss.validation import check_float

__all__ = [
    "Laplacian",
    "Sobel",
    "laplacian_edges",
    "laplacian_loss",
    "sobel_edges",
    "sobel_loss",
]

_REDUCTIONS = ("mean", "sum", "none")
_SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))
_SOBEL_Y = ((-1.0, -2.0, -1.0), (0.0, 0.0, 0.0), (1.0, 2.0, 1.0))
_LAPLACIAN = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))


# --------------------------------------------------------------------------- kernels
def _sobel_kernel(device: torch.device | None = None, dtype: torch.dtype | None = None) -> Tensor:
    """Return the stacked Sobel kernels, shape ``[2, 1, 3, 3]`` (x then y)."""
    return torch.tensor((_SOBEL_X, _SOBEL_Y), device=device, dtype=dtype).unsqueeze(1)


def _laplacian_kernel(
    device: torch.device | None = None, dtype: torch.dtype | None = None
) -> Tensor:
    """Return the 4-neighbour Laplacian kernel, shape ``[1, 1, 3, 3]``."""
    return torch.tensor((_LAPLACIAN,), device=device, dtype=dtype).unsqueeze(1)


# --------------------------------------------------------------------------- checks
def _check_image(owner: str, argument: str, x: object) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{owner}: `{argument}` expected a Tensor, got {type(x).__name__}.")
    if x.dim() != 4:
        raise ValueError(
            f"{owner}: `{argument}` expected a 4-D tensor [B, C, H, W], got shape {tuple(x.shape)}."
        )
    if not x.is_floating_point():
        raise TypeError(f"{owner}: `{argument}` expected a floating-point tensor, got {x.dtype}.")
    return x


def _check_pair(owner: str, input: object, target: object) -> tuple[Tensor, Tensor]:
    pred = _check_image(owner, "input", input)
    tgt = _check_image(owner, "target", target)
    if pred.shape != tgt.shape:
        raise ValueError(
            f"{owner}: `target` expected shape {tuple(pred.shape)} (the input's), "
            f"got {tuple(tgt.shape)}."
        )
    return pred, tgt


def _check_reduction(owner: str, reduction: object) -> str:
    if not isinstance(reduction, str):
        raise TypeError(f"{owner}: `reduction` expected a str, got {type(reduction).__name__}.")
    if reduction not in _REDUCTIONS:
        raise ValueError(
            f"{owner}: `reduction` expected one of 'mean', 'sum', 'none', got {reduction!r}."
        )
    return reduction


def _check_eps(owner: str, eps: object) -> float:
    """``eps`` under the square root of the Sobel magnitude: a float >= 0."""
    return check_float(
        owner, "eps", eps, "a float >= 0", low=0.0, finite=False, type_what="a float"
    )


# --------------------------------------------------------------------------- math
def _depthwise(x: Tensor, kernel: Tensor) -> Tensor:
    """Filter each channel of ``x`` with every kernel: ``[B, C, H, W] -> [B, C, K, H, W]``."""
    b, c, h, w = x.shape
    kernel = kernel.to(device=x.device, dtype=x.dtype)
    padded = F.pad(x.reshape(b * c, 1, h, w), (1, 1, 1, 1), mode="replicate")
    out = F.conv2d(padded, kernel)
    return out.reshape(b, c, kernel.shape[0], h, w)


def _sobel_magnitude(x: Tensor, kernel: Tensor, eps: float) -> Tensor:
    grads = _depthwise(x, kernel)
    return torch.sqrt(grads.square().sum(dim=2) + eps)


def _laplacian_response(x: Tensor, kernel: Tensor) -> Tensor:
    return _depthwise(x, kernel).squeeze(2)


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _sobel_loss(pred: Tensor, tgt: Tensor, kernel: Tensor, eps: float, reduction: str) -> Tensor:
    diff = _sobel_magnitude(pred, kernel, eps) - _sobel_magnitude(tgt, kernel, eps)
    return _reduce(diff.abs(), reduction)


def _laplacian_loss(pred: Tensor, tgt: Tensor, kernel: Tensor, reduction: str) -> Tensor:
    diff = _laplacian_response(pred, kernel) - _laplacian_response(tgt, kernel)
    return _reduce(diff.abs(), reduction)


# --------------------------------------------------------------------------- functional
def sobel_edges(image: Tensor, *, eps: float = 1e-6) -> Tensor:
    """Return the Sobel gradient magnitude of every channel, with replicate padding.

    Args:
        image: Image batch ``[B, C, H, W]``, floating point.
        eps: Added under the square root; keeps the gradient finite where the image
            is flat.

    Returns:
        ``sqrt(gx**2 + gy**2 + eps)``, shape ``[B, C, H, W]``.

    Raises:
        TypeError: If ``image`` is not a floating-point Tensor.
        ValueError: If ``image`` is not 4-D or ``eps`` is negative.
    """
    eps = _check_eps("sobel_edges", eps)
    x = _check_image("sobel_edges", "image", image)
    return _sobel_magnitude(x, _sobel_kernel(x.device, x.dtype), eps)


def laplacian_edges(image: Tensor) -> Tensor:
    """Return the signed 4-neighbour Laplacian of every channel, with replicate padding.

    Args:
        image: Image batch ``[B, C, H, W]``, floating point.

    Returns:
        The Laplacian response, shape ``[B, C, H, W]``.

    Raises:
        TypeError: If ``image`` is not a floating-point Tensor.
        ValueError: If ``image`` is not 4-D.
    """
    x = _check_image("laplacian_edges", "image", image)
    return _laplacian_response(x, _laplacian_kernel(x.device, x.dtype))


def sobel_loss(
    input: Tensor, target: Tensor, *, eps: float = 1e-6, reduction: str = "mean"
) -> Tensor:
    """L1 distance between the Sobel gradient magnitudes of ``input`` and ``target``.

    The functional twin of :class:`Sobel`; see the module docstring for the filter.

    Args:
        input: Prediction ``[B, C, H, W]``.
        target: Target, same shape as ``input``.
        eps: Added under the square root of the magnitude.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per-element ``[B, C, H, W]``).

    Returns:
        The reduced loss, or the per-element map for ``reduction="none"``.

    Raises:
        TypeError: If an input is not a floating-point Tensor.
        ValueError: If the shapes are not 4-D and equal, or an option is invalid.
    """
    eps = _check_eps("Sobel", eps)
    reduction = _check_reduction("Sobel", reduction)
    pred, tgt = _check_pair("Sobel", input, target)
    return _sobel_loss(pred, tgt, _sobel_kernel(pred.device, pred.dtype), eps, reduction)


def laplacian_loss(input: Tensor, target: Tensor, *, reduction: str = "mean") -> Tensor:
    """L1 distance between the Laplacian responses of ``input`` and ``target``.

    The functional twin of :class:`Laplacian`; see the module docstring for the filter.

    Args:
        input: Prediction ``[B, C, H, W]``.
        target: Target, same shape as ``input``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per-element ``[B, C, H, W]``).

    Returns:
        The reduced loss, or the per-element map for ``reduction="none"``.

    Raises:
        TypeError: If an input is not a floating-point Tensor.
        ValueError: If the shapes are not 4-D and equal, or ``reduction`` is invalid.
    """
    reduction = _check_reduction("Laplacian", reduction)
    pred, tgt = _check_pair("Laplacian", input, target)
    return _laplacian_loss(pred, tgt, _laplacian_kernel(pred.device, pred.dtype), reduction)


# --------------------------------------------------------------------------- modules
@register_loss(
    "Sobel", doc="L1 distance between Sobel gradient magnitudes of two images.", same_shape=True
)
class Sobel(nn.Module):
    """L1 distance between the Sobel gradient magnitudes of a prediction and a target.

    Each channel is filtered on its own with the 3x3 Sobel kernels after replicate
    padding, the magnitude is ``sqrt(gx**2 + gy**2 + eps)``, and the loss is
    ``|magnitude(input) - magnitude(target)|``, reduced by ``reduction``.

    Args:
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per-element ``[B, C, H, W]``).
        eps: Added under the square root; ``eps > 0`` keeps the gradient finite on
            flat regions.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If ``reduction`` is unknown or ``eps`` is negative.

    Shape:
        - input: ``[B, C, H, W]``, any ``C``.
        - target: same as input.
        - output: scalar, or ``[B, C, H, W]`` for ``reduction="none"``.
    """

    kernel: Tensor

    def __init__(self, reduction: str = "mean", eps: float = 1e-6) -> None:
        super().__init__()
        self.reduction = _check_reduction("Sobel", reduction)
        self.eps = _check_eps("Sobel", eps)
        self.register_buffer("kernel", _sobel_kernel(), persistent=False)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        """Return the edge loss between ``input`` and ``target``."""
        pred, tgt = _check_pair("Sobel", input, target)
        return _sobel_loss(pred, tgt, self.kernel, self.eps, self.reduction)

    def extra_repr(self) -> str:
        """Return the options shown in ``repr``."""
        return f"reduction={self.reduction!r}, eps={self.eps}"


@register_loss(
    "Laplacian", doc="L1 distance between Laplacian responses of two images.", same_shape=True
)
class Laplacian(nn.Module):
    """L1 distance between the Laplacian responses of a prediction and a target.

    Each channel is filtered on its own with the 4-neighbour Laplacian kernel
    ``[[0, 1, 0], [1, -4, 1], [0, 1, 0]]`` after replicate padding, and the loss is
    ``|laplacian(input) - laplacian(target)|``, reduced by ``reduction``.

    Args:
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per-element ``[B, C, H, W]``).

    Raises:
        TypeError: If ``reduction`` is not a str.
        ValueError: If ``reduction`` is unknown.

    Shape:
        - input: ``[B, C, H, W]``, any ``C``.
        - target: same as input.
        - output: scalar, or ``[B, C, H, W]`` for ``reduction="none"``.
    """

    kernel: Tensor

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = _check_reduction("Laplacian", reduction)
        self.register_buffer("kernel", _laplacian_kernel(), persistent=False)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        """Return the edge loss between ``input`` and ``target``."""
        pred, tgt = _check_pair("Laplacian", input, target)
        return _laplacian_loss(pred, tgt, self.kernel, self.reduction)

    def extra_repr(self) -> str:
        """Return the options shown in ``repr``."""
        return f"reduction={self.reduction!r}"

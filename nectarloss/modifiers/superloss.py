"""SuperLoss as a per-sample modifier with a running threshold kept on the device."""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor

from nectarloss.distributed import mean_across_ranks
from nectarloss.functional.super_loss import (
    _as_compute_dtype,
    _check_regularization,
    _running_threshold,
    _super_loss_parts,
    _super_loss_step,
)
from nectarloss.modifiers.base import LossContext, Modifier, maybe_compiled
from nectarloss.validation import check_bool, check_float

__all__ = ["SuperLoss"]

#: The running estimates of ``tau``.
THRESHOLD_METHODS = ("exp", "global")
_MODES = ("train", "eval")


def _check_threshold(threshold: object) -> float | str:
    if isinstance(threshold, str):
        if threshold not in THRESHOLD_METHODS:
            raise ValueError(
                f"SuperLoss: `threshold` expected a float or one of {THRESHOLD_METHODS}, "
                f"got {threshold!r}."
            )
        return threshold
    return check_float(
        "SuperLoss",
        "threshold",
        threshold,
        "a finite float",
        type_what=f"a float or one of {THRESHOLD_METHODS}",
    )


class SuperLoss(Modifier):
    """SuperLoss: per-sample confidence weighting for curriculum and noisy-label learning.

    Returns ``(loss - tau) * sigma* + lambda * log(sigma*)^2`` per sample with
    ``sigma* = exp(-W0(0.5 * max(-2/e, (loss - tau) / lambda)))`` computed from the
    detached loss, so ``d out / d loss = sigma*`` (see
    :func:`~nectarloss.functional.super_loss`, the functional twin).

    The threshold ``tau`` is a constant (e.g. ``log(num_classes)`` for cross-entropy) or a
    running estimate updated from each batch's mean loss before it is used:

    * ``"exp"``: ``tau <- tau - momentum * (tau - mean)``; the first batch sets
      ``tau = mean`` (a ``torch.where`` on a device flag, no host sync);
    * ``"global"``: the running mean of all batch means seen, updated as
      ``tau <- tau + (mean - tau) / n`` with a device counter ``n`` (an incremental mean
      instead of a running sum, which stays accurate in float32 over long runs).

    Training and evaluation keep separate estimates (``tau_train``, ``tau_eval``,
    following ``self.training``), saved in ``state_dict``. A batch whose mean is not
    finite (a NaN or inf loss, or an empty batch) leaves the estimate, its flag and its
    counter unchanged, as if it had been skipped (a ``torch.where``, no host sync); its
    output is still returned, computed with the previous ``tau`` (NaN or inf where the
    loss is), so the caller sees and reports it. With ``sync_ranks`` the test runs on the
    averaged mean, so all ranks skip together. The last batch's confidences are in
    :attr:`last_confidence`. Every sample with ``loss <= tau - 2 lambda / e`` has its
    ``beta`` capped and gets exactly ``sigma* = e`` (the dtype's ``e``), so with a
    threshold well above most losses many confidences tie; to rank samples (e.g. to find
    mislabeled ones) use :func:`~nectarloss.functional.rank_by_confidence`, which breaks
    ties by the raw loss.

    Args:
        threshold: A finite float, ``"exp"`` or ``"global"``.
        regularization: ``lambda > 0``; the larger, the closer ``sigma*`` stays to 1.
        momentum: EMA momentum for ``"exp"``, in ``(0, 1]`` (0.1 as in FastEstimator).
        sync_ranks: Under ``torch.distributed``, average each batch mean over all ranks
            (one ``all_reduce`` per call, no host sync) so every rank keeps the same
            ``tau``. Ignored outside a process group.
        use_compile: Run the forward (threshold update included) through
            ``torch.compile`` as one fused kernel (faster on small batches once compiled;
            the first call compiles, which takes seconds). Not combined with
            ``sync_ranks``. Without it the eager forward is 34 aten ops (float32, running
            threshold); the module also traces whole under ``torch.compile(...,
            fullgraph=True)`` of a caller, compiling once per input shape and mode.

    Raises:
        TypeError: If ``threshold`` is neither a number nor a string (bools included), or
            ``regularization``/``momentum`` are not numbers.
        ValueError: If ``threshold`` is NaN, inf or an unknown string,
            ``regularization <= 0`` or ``momentum`` is outside ``(0, 1]``.

    Shape:
        - loss: ``[B]``; the context is not used (it may be None).
        - output: ``[B]``.

    Example:
        >>> modifier = SuperLoss(threshold=1.0)
        >>> modifier(torch.tensor([0.0, 1.0, 3.0]))
        tensor([-1.7183,  0.0000,  1.4559])
        >>> modifier.last_confidence
        tensor([2.7183, 1.0000, 0.5671])

    Reference:
        Castells, Weinzaepfel, Revaud, "SuperLoss: A Generic Loss for Robust Curriculum
        Learning", NeurIPS 2020.
    """

    tau_train: Tensor
    tau_eval: Tensor
    is_initialized_train: Tensor
    is_initialized_eval: Tensor
    count_train: Tensor
    count_eval: Tensor
    last_confidence: Tensor

    def __init__(
        self,
        threshold: float | str = "exp",
        regularization: float = 1.0,
        momentum: float = 0.1,
        sync_ranks: bool = False,
        use_compile: bool = False,
    ) -> None:
        super().__init__()
        self.sync_ranks = check_bool("SuperLoss", "sync_ranks", sync_ranks)
        self.use_compile = check_bool("SuperLoss", "use_compile", use_compile)
        self.threshold = _check_threshold(threshold)
        self.regularization = _check_regularization("SuperLoss", regularization)
        self.momentum = check_float(
            "SuperLoss", "momentum", momentum, "a float in (0, 1]", low=0.0, high=1.0, open_low=True
        )
        initial = self._initial_tau()
        for mode in _MODES:
            self.register_buffer(f"tau_{mode}", torch.tensor(initial, dtype=torch.float32))
            self.register_buffer(f"is_initialized_{mode}", torch.tensor(False))
            self.register_buffer(f"count_{mode}", torch.tensor(0, dtype=torch.int64))
        #: Per-sample confidences ``sigma*`` of the last call (detached, not saved).
        self.register_buffer("last_confidence", torch.empty(0), persistent=False)

    @property
    def confidences(self) -> Tensor:
        """Per-sample confidences ``sigma*`` of the latest batch (empty before the first)."""
        return self.last_confidence

    def _initial_tau(self) -> float:
        return self.threshold if isinstance(self.threshold, float) else 0.0

    @property
    def tau(self) -> Tensor:
        """The current threshold for the current mode (``tau_train`` or ``tau_eval``)."""
        return self.tau_train if self.training else self.tau_eval

    def reset(self) -> None:
        """Forget the running thresholds and the last confidences (in place, same device)."""
        initial = self._initial_tau()
        for mode in _MODES:
            getattr(self, f"tau_{mode}").fill_(initial)
            getattr(self, f"is_initialized_{mode}").fill_(False)
            getattr(self, f"count_{mode}").zero_()
        self.last_confidence = self.last_confidence.new_empty(0)

    def _running_buffers(self) -> tuple[Tensor, Tensor, Tensor]:
        """This mode's ``(tau, is_initialized, count)`` buffers.

        Looked up by constant names (no string building), so ``torch.compile`` traces it.
        """
        buffers = cast("dict[str, Tensor]", self._buffers)  # all registered in __init__
        if self.training:
            return buffers["tau_train"], buffers["is_initialized_train"], buffers["count_train"]
        return buffers["tau_eval"], buffers["is_initialized_eval"], buffers["count_eval"]

    def forward(self, loss: Tensor, context: LossContext | None = None) -> Tensor:
        """Return the per-sample SuperLoss and update the running threshold.

        A non-finite or empty batch leaves the threshold unchanged (see the class
        docstring) and is computed with the current one.

        Args:
            loss: Per-sample loss, shape ``[B]`` (``B`` may be 0).
            context: Unused; SuperLoss needs only the loss.

        Returns:
            The per-sample SuperLoss, shape ``[B]``, float32 or wider.
        """
        values = _as_compute_dtype(loss)
        tau, is_initialized, count = self._running_buffers()
        is_running = isinstance(self.threshold, str)
        momentum = self.momentum if self.threshold == "exp" else None
        if is_running and self.sync_ranks:  # every rank joins, even with an empty batch
            batch_mean = mean_across_ranks(values.detach().mean()).to(values.dtype)
            threshold = _running_threshold(batch_mean, tau, is_initialized, count, momentum)
            out, sigma = _super_loss_parts(values, threshold, self.regularization)
        else:
            step = maybe_compiled(_super_loss_step, self.use_compile)
            out, sigma = step(
                values, tau, is_initialized, count, momentum, self.regularization, is_running
            )
        # Written to the dict: `self.last_confidence = sigma` would make torch.compile
        # guard on this buffer's size and compile the forward a second time.
        self._buffers["last_confidence"] = sigma
        return out

    def __call__(self, loss: Tensor, context: LossContext | None = None) -> Tensor:
        """Run :meth:`forward` through ``nn.Module.__call__`` (hooks included), typed."""
        out: Tensor = super(Modifier, self).__call__(loss, context)
        return out

    def extra_repr(self) -> str:
        """Show the options."""
        return (
            f"threshold={self.threshold!r}, regularization={self.regularization}, "
            f"momentum={self.momentum}, sync_ranks={self.sync_ranks}, "
            f"use_compile={self.use_compile}"
        )

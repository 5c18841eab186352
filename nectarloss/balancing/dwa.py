"""``DWA``: dynamic weight average (Liu, Johns and Davison 2019)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from nectarloss.balancing.base import Balancer
from nectarloss.validation import check_positive

__all__ = ["DWA"]


class DWA(Balancer):
    """Weight each loss of the group by how slowly it fell over the last two epochs.

    At each epoch boundary ``w_k = K exp(r_k / T) / sum_i exp(r_i / T)``, where ``K``
    is the number of losses in the group and ``r_k = mean_k(e-1) / mean_k(e-2)`` is the
    ratio of the loss's mean (unweighted, post-modifier) over the last two completed
    epochs. The weights are 1 until two epochs have completed. The means are
    accumulated on the device from the training calls (a running sum and count per
    epoch, so a flush of the history loses nothing; calls without gradients, such as
    validation, and calls in ``.eval()`` mode are left out), and the boundary is seen
    from the ``epoch`` the calls pass: the first call with a larger epoch closes the
    epoch for the whole group. A loss without a mean for either of the two epochs (it
    joined the group later, or was not computed in one) counts as unchanged, ``r = 1``.
    No host sync.

    Args:
        temperature: ``T``; larger is smoother (LibMTL's default 2.0).

    Raises:
        ValueError: (at a call) ``epoch`` goes back, or is not given.

    Example:
        >>> dwa = DWA(temperature=2.0)
        >>> dwa.bind("a"); dwa.bind("b")
        >>> for epoch, (a, b) in enumerate([(1.0, 1.0), (0.5, 1.0), (0.5, 1.0)]):
        ...     _ = dwa.weigh("a", torch.tensor(a, requires_grad=True), 1.0, epoch)
        ...     _ = dwa.weigh("b", torch.tensor(b, requires_grad=True), 1.0, epoch)
        >>> [round(w, 4) for w in dwa.weights.tolist()]  # epoch 2: r = (0.5, 1.0)
        [0.8756, 1.1244]

    Reference:
        Liu, Johns and Davison, "End-to-End Multi-Task Learning with Attention",
        CVPR 2019; LibMTL ``weighting/DWA.py``.
    """

    def __init__(self, temperature: float = 2.0) -> None:
        super().__init__()
        self.temperature = check_positive("DWA", "temperature", temperature)
        #: This epoch's running sums and counts per member (float64, on the device).
        self.register_buffer("epoch_sums", torch.zeros(0, dtype=torch.float64))
        self.register_buffer("epoch_counts", torch.zeros(0, dtype=torch.float64))
        #: The means of the last two completed epochs: row 0 the older (``e-2``).
        self.register_buffer("epoch_means", torch.zeros(2, 0, dtype=torch.float64))
        #: The weights (factors) in force this epoch.
        self.register_buffer("weights", torch.zeros(0, dtype=torch.float64))
        #: The epoch being accumulated (``None`` before the first call).
        self.epoch: int | None = None
        #: Epochs completed so far.
        self.num_completed = 0

    epoch_sums: Tensor
    epoch_counts: Tensor
    epoch_means: Tensor
    weights: Tensor

    def _on_bind(self, name: str) -> None:
        device = self.weights.device
        zero = torch.zeros(1, dtype=torch.float64, device=device)
        no_mean = torch.full((2, 1), math.nan, dtype=torch.float64, device=device)  # none yet
        self.epoch_sums = torch.cat([self.epoch_sums, zero])
        self.epoch_counts = torch.cat([self.epoch_counts, zero])
        self.epoch_means = torch.cat([self.epoch_means, no_mean], dim=1)
        self.weights = torch.cat([self.weights, torch.ones_like(zero)])

    def _on_unbind(self, index: int) -> None:
        def drop(t: Tensor) -> Tensor:
            return torch.cat([t[..., :index], t[..., index + 1 :]], dim=-1)

        self.epoch_sums, self.epoch_counts = drop(self.epoch_sums), drop(self.epoch_counts)
        self.epoch_means, self.weights = drop(self.epoch_means), drop(self.weights)

    def _close_epoch(self) -> None:
        """The epoch just ended: shift the means, and recompute the weights (device ops)."""
        counts = self.epoch_counts
        mean = torch.where(counts > 0, self.epoch_sums / counts.clamp_min(1.0), math.nan)
        self.epoch_means[0] = self.epoch_means[1]
        self.epoch_means[1] = mean
        self.epoch_sums.zero_()
        self.epoch_counts.zero_()
        self.num_completed += 1
        if self.num_completed >= 2:
            ratio = self.epoch_means[1] / self.epoch_means[0]
            ratio = torch.where(torch.isfinite(ratio), ratio, 1.0)  # no mean: unchanged
            k = len(self.members)
            self.weights.copy_(k * torch.softmax(ratio / self.temperature, dim=0))

    def factor(self, name: str, value: Tensor, epoch: float) -> Tensor:
        """This epoch's weight of ``name`` (after closing the previous epoch, if it ended)."""
        if epoch is None:
            raise ValueError(f"DWA ({name}): `epoch` expected a number, got None.")
        current = int(epoch)
        if self.epoch is None:
            self.epoch = current
        elif current < self.epoch:
            raise ValueError(
                f"DWA ({name}): `epoch` expected >= {self.epoch} (epochs only go forward), "
                f"got {epoch}."
            )
        elif current > self.epoch:
            self._close_epoch()
            self.epoch = current
        index = self.index(name)
        self._check_device(self.weights, value, name)
        if self.training and torch.is_grad_enabled() and value.requires_grad:
            self.epoch_sums[index] += value.detach().to(torch.float64)
            self.epoch_counts[index] += 1.0
        return self.weights[index]

    def get_extra_state(self) -> dict[str, Any]:
        """The members, the current epoch and the epochs completed."""
        return {
            **super().get_extra_state(),
            "epoch": self.epoch,
            "num_completed": self.num_completed,
        }

    def set_extra_state(self, state: Any) -> None:
        """Restore :meth:`get_extra_state`."""
        super().set_extra_state(state)
        epoch, completed = state.get("epoch"), state.get("num_completed")
        if (epoch is not None and (not isinstance(epoch, int) or epoch < 0)) or (
            not isinstance(completed, int) or completed < 0
        ):
            raise ValueError(f"DWA: state `_extra_state` has bad counters {state!r}.")
        self.epoch, self.num_completed = epoch, completed

    def spec_config(self) -> dict[str, Any]:
        """``temperature``."""
        return {"temperature": self.temperature}

"""BASELINES, not nectarloss: the seed formulas for Sangoi and SuperLoss, written eagerly.

Sangoi: OneTrainer's ``_sangoi_loss_modifier`` line for line
(``/work/shared/seeds/sangoi-loss-modifier.md``); ``self._snr(timesteps)`` is a gather
from an SNR table, as OneTrainer does.

SuperLoss: FastEstimator's torch path (``/work/shared/seeds/superloss-fastestimator-
reference.txt``): ``cap = -1.9999998 / e``, an exponential moving threshold whose
``initialized`` flag is read on the host every call (``_read_variable``), no detach of
the base loss. Two Lambert W back ends, as found in public implementations:

* :func:`lambertw_scipy`: ``scipy.special.lambertw`` on a CPU NumPy copy (a device to
  host copy and back every call);
* :func:`lambertw_halley_loop`: Halley iterations until ``torch.all`` says every element
  converged (one host sync per iteration, a data-dependent number of iterations).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import scipy.special
import torch
from torch import Tensor

__all__ = [
    "SeedSuperLoss",
    "lambertw_halley_loop",
    "lambertw_scipy",
    "seed_sangoi_modifier",
    "seed_sangoi_weight",
]


# ------------------------------------------------------------------------------ Sangoi
def seed_sangoi_weight(snr: Tensor, predicted: Tensor, target: Tensor) -> Tensor:
    """The seed's body after ``snr = self._snr(timesteps, device)``, verbatim."""
    min_snr = 1e-4
    max_snr = 100
    snr = torch.clamp(snr, min=min_snr, max=max_snr)
    epsilon = 1e-8
    mape = torch.abs((target - predicted) / (target + epsilon))
    mape = torch.clamp(mape, min=0, max=1)
    mape = mape.mean(dim=[1, 2, 3])
    snr_weight = torch.log(snr + 1)
    mape_reward = 1 - mape
    combined_weight = torch.exp(-mape_reward * snr_weight)
    return combined_weight


def seed_sangoi_modifier(
    snr_table: Tensor, timesteps: Tensor, predicted: Tensor, target: Tensor
) -> Tensor:
    """``_sangoi_loss_modifier`` with ``self._snr`` as a table gather."""
    return seed_sangoi_weight(snr_table[timesteps], predicted, target)


# ------------------------------------------------------------------------------ Lambert W
def lambertw_scipy(x: Tensor) -> Tensor:
    """``scipy.special.lambertw(x).real`` through a CPU NumPy copy (syncs on a GPU)."""
    w = scipy.special.lambertw(x.detach().cpu().numpy()).real
    return torch.from_numpy(w).to(device=x.device, dtype=x.dtype)


def lambertw_halley_loop(x: Tensor, max_iter: int = 50) -> Tensor:
    """W0 by Halley's method, looping until ``torch.all`` reports convergence.

    The usual public torch version: initial guess from the branch-point expansion near
    ``-1/e`` and ``log1p`` elsewhere; every iteration ends with a host read of
    ``torch.all(converged)``.
    """
    tol = 1e-6 if x.dtype in (torch.float16, torch.bfloat16, torch.float32) else 1e-12
    p = torch.sqrt(torch.clamp(2.0 * (math.e * x + 1.0), min=0.0))
    w = torch.where(x < -0.25, -1.0 + p - p * p / 3.0, torch.log1p(x))
    for _ in range(max_iter):
        ew = torch.exp(w)
        f = w * ew - x
        wp1 = w + 1.0
        w_new = w - f / (ew * wp1 - (w + 2.0) * f / (2.0 * wp1))
        converged = torch.abs(w_new - w) <= tol * (1.0 + torch.abs(w_new))
        w = w_new
        if torch.all(converged):  # a host sync every iteration
            break
    return w


# ------------------------------------------------------------------------------ SuperLoss
class SeedSuperLoss:
    """FastEstimator's ``SuperLoss.forward`` (torch path) with a pluggable Lambert W.

    Returns the per-sample super loss (``average_loss=False``); the benchmark averages.
    """

    def __init__(
        self,
        lambertw: Callable[[Tensor], Tensor],
        threshold: float | str = "exp",
        regularization: float = 1.0,
        device: torch.device | str = "cpu",
    ) -> None:
        self.lambertw = lambertw
        self.tau_method = threshold
        initial = 0.0 if threshold == "exp" else float(threshold)
        self.initialized = torch.tensor(False).to(device)
        self.tau = torch.tensor(initial).to(device)
        self.cap = torch.tensor(-1.9999998 / math.e).to(device)
        self.lam = torch.tensor(float(regularization)).to(device)

    def __call__(self, base_loss: Tensor, warmup: bool = False) -> Tensor:
        tau = self._accumulate_tau(base_loss, warmup)
        beta = (base_loss - tau) / self.lam
        ln_sigma = -self.lambertw(0.5 * torch.maximum(self.cap, beta))
        return (base_loss - tau) * torch.exp(ln_sigma) + self.lam * torch.pow(ln_sigma, 2)

    def _accumulate_tau(self, loss: Tensor, warmup: bool) -> Tensor:
        if self.tau_method == "exp":
            with torch.no_grad():  # FastEstimator's _assign writes a variable in place
                if bool(self.initialized):  # _read_variable: a host read every call
                    self.tau.copy_(self.tau - 0.1 * (self.tau - loss.mean()))
                else:
                    self.tau.copy_(loss.mean())
                    if not warmup:
                        self.initialized.fill_(True)
        return self.tau

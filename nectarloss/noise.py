"""Signal-to-noise ratio (SNR) tables of diffusion noise schedules.

:class:`NoiseSchedule` holds a table of ``SNR(t)`` for the integer timesteps
``t = 0 .. num_steps - 1`` as a float32 buffer (computed in float64), so it moves with
``.to()`` and lands in ``state_dict``. Looking timesteps up is a gather (integer
timesteps) or a linear interpolation between neighbouring entries (float timesteps), with
no host synchronisation. It is not a modifier: the SNR modifiers in
:mod:`nectarloss.modifiers` look their timesteps up in one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral
from typing import Any

import torch
from torch import Tensor, nn

from nectarloss.validation import check_float

__all__ = ["NoiseSchedule"]

_FLOAT32_MAX = torch.finfo(torch.float32).max


def _as_float64_1d(owner: str, name: str, values: object, allow_inf: bool = False) -> Tensor:
    """Return ``values`` as a 1-D, non-empty, non-NaN float64 CPU tensor, or raise.

    Construction-time only: reading the values back is a host sync.
    """
    if isinstance(values, Tensor):
        table = values.detach().to(device="cpu", dtype=torch.float64)
    else:
        try:  # sequences, numpy arrays and other array-likes
            table = torch.as_tensor(values, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as error:
            raise TypeError(
                f"{owner}: `{name}` expected a 1-D Tensor or sequence of floats, "
                f"got {type(values).__name__}."
            ) from error
    if table.ndim != 1 or table.numel() == 0:
        raise ValueError(
            f"{owner}: `{name}` expected a non-empty 1-D tensor, got shape {tuple(table.shape)}."
        )
    invalid = torch.isnan(table) if allow_inf else ~torch.isfinite(table)
    if bool(invalid.any()):
        what = "no NaN" if allow_inf else "finite values"
        raise ValueError(f"{owner}: `{name}` expected {what}, got NaN or inf.")
    return table


def _check_in_range(
    owner: str, name: str, table: Tensor, low: float, high: float, closed_high: bool
) -> None:
    """Raise unless every value lies in ``(low, high)`` (or ``(low, high]``)."""
    above = table > high if closed_high else table >= high
    bad = (table <= low) | above
    if bool(bad.any()):
        index = int(torch.nonzero(bad)[0, 0])
        bracket = "]" if closed_high else ")"
        raise ValueError(
            f"{owner}: `{name}` expected values in ({low:g}, {high:g}{bracket}, "
            f"got {float(table[index])!r} at index {index}."
        )


def _check_num_steps(owner: str, num_steps: object) -> int:
    if isinstance(num_steps, bool) or not isinstance(num_steps, Integral):
        raise TypeError(
            f"{owner}: `num_steps` expected an int >= 1, "
            f"got {type(num_steps).__name__} {num_steps!r}."
        )
    if int(num_steps) < 1:
        raise ValueError(f"{owner}: `num_steps` expected an int >= 1, got {int(num_steps)}.")
    return int(num_steps)


def _check_beta(owner: str, name: str, value: object) -> float:
    return check_float(
        owner, name, value, "a float in (0, 1)", low=0.0, high=1.0, open_low=True, open_high=True
    )


def _check_beta_range(
    owner: str, num_steps: object, beta_start: object, beta_end: object
) -> tuple[int, float, float]:
    """The checked arguments of a schedule of ``num_steps`` betas from start to end."""
    n = _check_num_steps(owner, num_steps)
    return n, _check_beta(owner, "beta_start", beta_start), _check_beta(owner, "beta_end", beta_end)


def _snr_lookup(table: Tensor, timesteps: Tensor) -> Tensor:
    """Gather (integer) or linearly interpolate (float) ``table`` at ``timesteps``.

    Timesteps are clamped to ``[0, len(table) - 1]``; NaN float timesteps give NaN.
    """
    last = table.shape[0] - 1
    if not timesteps.is_floating_point():
        return table[timesteps.long().clamp(0, last)]
    t = timesteps.to(torch.promote_types(timesteps.dtype, torch.float32)).clamp(0, last)
    low = t.floor()
    # NaN survives the clamp and turns into an arbitrary integer: clamp the index too.
    low_index = low.long().clamp(0, last)
    high_index = (low_index + 1).clamp(max=last)
    weight = (t - low).to(table.dtype)
    return torch.lerp(table[low_index], table[high_index], weight)


class NoiseSchedule(nn.Module):
    """A table of SNR values per diffusion timestep, looked up without host syncs.

    Build it with a constructor for the schedule you train with:
    :meth:`from_betas`, :meth:`from_alphas_cumprod`, :meth:`from_sigmas`,
    :meth:`from_scheduler` (a diffusers-style scheduler), :meth:`linear`,
    :meth:`scaled_linear` (Stable Diffusion) or :meth:`flow_matching`. ``__init__`` takes
    the SNR table itself.

    For DDPM-style schedules ``SNR = alphas_cumprod / (1 - alphas_cumprod)``. The table is
    computed in float64 and stored in a float32 buffer ``snr_table`` (an infinite SNR, from
    an ``alphas_cumprod`` of exactly 1, is stored as the largest float32).

    Timesteps outside ``[0, num_steps - 1]`` are clamped (checking them would need a host
    sync). Call :meth:`check_timesteps`, or ``snr(t, check=True)``, to validate them
    explicitly while debugging.

    Args:
        snr: The SNR per integer timestep, 1-D, non-empty, >= 0 (``+inf`` allowed).

    Attributes:
        config: The spec this schedule was built from (``{"kind": ..., ...}``), set by
            :func:`nectarloss.specs.build_noise_schedule` so that
            :func:`~nectarloss.specs.dump_spec` writes it back as given; ``None`` for a
            schedule built in Python.

    Raises:
        TypeError: If ``snr`` is not a tensor or sequence of floats.
        ValueError: If ``snr`` is not 1-D and non-empty, or has NaN or negative values.

    Shape:
        - timesteps: any shape, integer or float.
        - output: same shape as timesteps, float32.

    Example:
        >>> schedule = NoiseSchedule.scaled_linear()
        >>> schedule.snr(torch.tensor([0, 999]))
        tensor([1.1755e+03, 4.6819e-03])
        >>> schedule.snr(torch.tensor([0.5]))  # halfway between SNR(0) and SNR(1)
        tensor([880.6674])

    Reference:
        Ho, Jain, Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020 (linear
        betas); Rombach et al., "High-Resolution Image Synthesis with Latent Diffusion
        Models", CVPR 2022 (scaled linear); Esser et al., "Scaling Rectified Flow
        Transformers for High-Resolution Image Synthesis", ICML 2024 (flow matching).
    """

    snr_table: Tensor
    config: dict[str, Any] | None = None

    def __init__(self, snr: Tensor | Sequence[float]) -> None:
        super().__init__()
        table = _as_float64_1d("NoiseSchedule", "snr", snr, allow_inf=True)
        if bool((table < 0).any()):
            raise ValueError(
                f"NoiseSchedule: `snr` expected values >= 0, got {float(table.min())!r}."
            )
        table = table.clamp(max=_FLOAT32_MAX).to(torch.float32)
        self.register_buffer("snr_table", table)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_alphas_cumprod(cls, alphas_cumprod: Tensor | Sequence[float]) -> NoiseSchedule:
        """Build from the cumulative products ``alpha_bar_t`` of a DDPM schedule.

        Args:
            alphas_cumprod: ``alpha_bar_t`` per timestep, 1-D, values in ``(0, 1]``.

        Returns:
            The schedule with ``SNR = alpha_bar / (1 - alpha_bar)``.

        Raises:
            TypeError: If ``alphas_cumprod`` is not a tensor or sequence of floats.
            ValueError: If it is not 1-D and non-empty, or a value is outside ``(0, 1]``.
        """
        owner = "NoiseSchedule.from_alphas_cumprod"
        table = _as_float64_1d(owner, "alphas_cumprod", alphas_cumprod)
        _check_in_range(owner, "alphas_cumprod", table, 0.0, 1.0, closed_high=True)
        return cls(table / (1.0 - table))

    @classmethod
    def from_betas(cls, betas: Tensor | Sequence[float]) -> NoiseSchedule:
        """Build from the per-step noise variances ``beta_t`` of a DDPM schedule.

        Args:
            betas: ``beta_t`` per timestep, 1-D, values in ``(0, 1)``.

        Returns:
            The schedule with ``alpha_bar_t = prod_{s <= t} (1 - beta_s)``.

        Raises:
            TypeError: If ``betas`` is not a tensor or sequence of floats.
            ValueError: If it is not 1-D and non-empty, or a value is outside ``(0, 1)``.
        """
        owner = "NoiseSchedule.from_betas"
        table = _as_float64_1d(owner, "betas", betas)
        _check_in_range(owner, "betas", table, 0.0, 1.0, closed_high=False)
        alphas_cumprod = torch.cumprod(1.0 - table, dim=0)
        return cls(alphas_cumprod / (1.0 - alphas_cumprod))

    @classmethod
    def from_sigmas(cls, sigmas: Tensor | Sequence[float]) -> NoiseSchedule:
        """Build from flow-matching noise levels ``x_t = (1 - sigma) x0 + sigma eps``.

        Args:
            sigmas: ``sigma_t`` per timestep, 1-D, values in ``(0, 1]``.

        Returns:
            The schedule with ``SNR = ((1 - sigma) / sigma)^2``.

        Raises:
            TypeError: If ``sigmas`` is not a tensor or sequence of floats.
            ValueError: If it is not 1-D and non-empty, or a value is outside ``(0, 1]``.
        """
        owner = "NoiseSchedule.from_sigmas"
        table = _as_float64_1d(owner, "sigmas", sigmas)
        _check_in_range(owner, "sigmas", table, 0.0, 1.0, closed_high=True)
        return cls(((1.0 - table) / table).square())

    @classmethod
    def from_scheduler(cls, scheduler: Any) -> NoiseSchedule:
        """Build from a diffusers-style scheduler (``DDPMScheduler``, ``DDIMScheduler``...).

        Uses ``scheduler.alphas_cumprod`` if present, else ``scheduler.betas``.
        Flow-matching schedulers have neither: use :meth:`flow_matching` or
        :meth:`from_sigmas`.

        Args:
            scheduler: Any object with an ``alphas_cumprod`` or ``betas`` attribute.

        Returns:
            The schedule.

        Raises:
            TypeError: If ``scheduler`` has neither attribute.
            ValueError: If the attribute's values are invalid (see the other constructors).
        """
        alphas_cumprod = getattr(scheduler, "alphas_cumprod", None)
        if alphas_cumprod is not None:
            return cls.from_alphas_cumprod(alphas_cumprod)
        betas = getattr(scheduler, "betas", None)
        if betas is not None:
            return cls.from_betas(betas)
        raise TypeError(
            "NoiseSchedule.from_scheduler: `scheduler` expected an object with "
            f"`alphas_cumprod` or `betas`, got {type(scheduler).__name__}."
        )

    @classmethod
    def linear(
        cls, num_steps: int = 1000, beta_start: float = 0.0001, beta_end: float = 0.02
    ) -> NoiseSchedule:
        """DDPM's linear betas, ``linspace(beta_start, beta_end, num_steps)``.

        Args:
            num_steps: Number of training timesteps, >= 1.
            beta_start: First beta, in ``(0, 1)``.
            beta_end: Last beta, in ``(0, 1)``.

        Returns:
            The schedule.

        Raises:
            TypeError: If an argument has the wrong type.
            ValueError: If an argument is out of range.

        Reference:
            Ho, Jain, Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020.
        """
        n, start, end = _check_beta_range("NoiseSchedule.linear", num_steps, beta_start, beta_end)
        return cls.from_betas(torch.linspace(start, end, n, dtype=torch.float64))

    @classmethod
    def scaled_linear(
        cls, num_steps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012
    ) -> NoiseSchedule:
        """Stable Diffusion's betas, ``linspace(sqrt(beta_start), sqrt(beta_end), n)^2``.

        Args:
            num_steps: Number of training timesteps, >= 1.
            beta_start: First beta, in ``(0, 1)``.
            beta_end: Last beta, in ``(0, 1)``.

        Returns:
            The schedule.

        Raises:
            TypeError: If an argument has the wrong type.
            ValueError: If an argument is out of range.

        Reference:
            Rombach et al., "High-Resolution Image Synthesis with Latent Diffusion Models",
            CVPR 2022.
        """
        owner = "NoiseSchedule.scaled_linear"
        n, start, end = _check_beta_range(owner, num_steps, beta_start, beta_end)
        sqrt_betas = torch.linspace(math.sqrt(start), math.sqrt(end), n, dtype=torch.float64)
        return cls.from_betas(sqrt_betas.square())

    @classmethod
    def flow_matching(cls, num_steps: int = 1000) -> NoiseSchedule:
        """Rectified-flow schedule on the grid ``sigma_t = (t + 1) / num_steps``.

        Index ``t`` holds ``SNR = ((1 - sigma_t) / sigma_t)^2``; sigma runs from
        ``1 / num_steps`` (nearly clean) to 1 (pure noise, SNR 0) and is never 0, so the
        table stays finite. A diffusers flow-matching timestep value ``T = 1000 * sigma``
        (``num_steps = 1000``) is index ``T - 1``; pass ``T - 1``, or build the table from
        your own sigmas with :meth:`from_sigmas`.

        Args:
            num_steps: Number of grid points, >= 1.

        Returns:
            The schedule.

        Raises:
            TypeError: If ``num_steps`` is not an int.
            ValueError: If ``num_steps < 1``.

        Reference:
            Esser et al., "Scaling Rectified Flow Transformers for High-Resolution Image
            Synthesis", ICML 2024.
        """
        n = _check_num_steps("NoiseSchedule.flow_matching", num_steps)
        sigmas = torch.arange(1, n + 1, dtype=torch.float64) / n
        return cls.from_sigmas(sigmas)

    # ------------------------------------------------------------------------ lookup
    @property
    def num_steps(self) -> int:
        """Number of entries in the table (valid timesteps are ``0 .. num_steps - 1``)."""
        return int(self.snr_table.shape[0])

    def check_timesteps(self, timesteps: Tensor) -> None:
        """Raise if a timestep is outside ``[0, num_steps - 1]`` or not finite.

        This reads values back to the host (a sync): use it while debugging, not per step.

        Args:
            timesteps: Integer or float timesteps, any shape.

        Raises:
            TypeError: If ``timesteps`` is not a real-valued Tensor.
            ValueError: If a timestep is out of range or NaN.
        """
        self._check_dtype(timesteps)
        last = self.num_steps - 1
        t = timesteps.detach()
        bad = (t < 0) | (t > last)
        if t.is_floating_point():
            bad = bad | ~torch.isfinite(t)
        if bool(bad.any()):
            value = t.flatten()[torch.nonzero(bad.flatten())[0, 0]].tolist()
            raise ValueError(
                f"NoiseSchedule: `timesteps` expected values in [0, {last}], got {value!r}."
            )

    def snr(self, timesteps: Tensor, *, check: bool = False) -> Tensor:
        """SNR at ``timesteps``: a gather for integers, linear interpolation for floats.

        Args:
            timesteps: Integer timesteps, or float timesteps in ``[0, num_steps - 1]``
                (continuous time scaled to the table), any shape. Out-of-range values are
                clamped. CPU timesteps are moved to the table's device.
            check: Validate the timesteps first with :meth:`check_timesteps` (syncs).

        Returns:
            The SNR, same shape as ``timesteps``, float32, on the table's device.

        Raises:
            TypeError: If ``timesteps`` is not a real-valued Tensor.
            ValueError: If ``timesteps`` live on an accelerator while the table is on
                another device (move the module with ``.to()``), or, with ``check=True``,
                if a timestep is out of range.
        """
        self._check_dtype(timesteps)
        table = self.snr_table
        if timesteps.device != table.device:
            if timesteps.device.type != "cpu":
                raise ValueError(
                    f"NoiseSchedule: `timesteps` expected device {table.device} (the SNR "
                    f"table's; move the modifier with .to()), got {timesteps.device}."
                )
            timesteps = timesteps.to(table.device, non_blocking=True)
        if check:
            self.check_timesteps(timesteps)
        return _snr_lookup(table, timesteps.detach())

    def forward(self, timesteps: Tensor) -> Tensor:
        """Same as :meth:`snr` (without the check)."""
        return self.snr(timesteps)

    def extra_repr(self) -> str:
        """Show the number of steps."""
        return f"num_steps={self.num_steps}"

    @staticmethod
    def _check_dtype(timesteps: object) -> None:
        if not isinstance(timesteps, Tensor):
            raise TypeError(
                f"NoiseSchedule: `timesteps` expected a Tensor, got {type(timesteps).__name__}."
            )
        if timesteps.dtype == torch.bool or timesteps.is_complex():
            raise TypeError(
                f"NoiseSchedule: `timesteps` expected an integer or float Tensor, "
                f"got {timesteps.dtype}."
            )


def as_noise_schedule(owner: str, noise_schedule: object) -> NoiseSchedule:
    """Accept a :class:`NoiseSchedule` or a diffusers-style scheduler, else raise."""
    if isinstance(noise_schedule, NoiseSchedule):
        return noise_schedule
    if hasattr(noise_schedule, "alphas_cumprod") or hasattr(noise_schedule, "betas"):
        return NoiseSchedule.from_scheduler(noise_schedule)
    raise TypeError(
        f"{owner}: `noise_schedule` expected a NoiseSchedule (or a scheduler with "
        f"`alphas_cumprod` or `betas`), got {type(noise_schedule).__name__}."
    )

"""Spec models of the per-sample modifiers (a loss entry's ``"modifiers"`` list)."""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    ConfigDict,
    Field,
    field_validator,
)

from nectarloss.modifiers import (
    P2,
    DebiasedEstimation,
    MinSNR,
    Modifier,
    Sangoi,
    SuperLoss,
)
from nectarloss.specs.errors import show
from nectarloss.specs.models import NoiseScheduleSpec, StrictModel, default_of

__all__ = [
    "MODIFIER_SPECS",
    "DebiasedEstimationSpec",
    "MinSNRSpec",
    "ModifierSpec",
    "ModifierSpecBase",
    "P2Spec",
    "SangoiSpec",
    "SuperLossSpec",
]


# ----------------------------------------------------------------------------- modifiers
_PredictionType = Literal["epsilon", "v_prediction", "sample"]


class ModifierSpecBase(StrictModel):
    """Fields every modifier entry has; subclasses name the modifier class."""

    #: The modifier class the entry builds.
    modifier_class: ClassVar[type[Modifier]]
    #: Whether the constructor takes a ``noise_schedule``.
    uses_noise_schedule: ClassVar[bool] = False

    def modifier_kwargs(self) -> dict[str, Any]:
        """Constructor keywords other than ``noise_schedule`` (tuples for pairs)."""
        out = self.model_dump(exclude={"name", "noise_schedule"})
        return {k: tuple(v) if isinstance(v, list) else v for k, v in out.items()}


class SuperLossSpec(ModifierSpecBase):
    """:class:`~nectarloss.modifiers.SuperLoss`: per-sample confidence weighting."""

    model_config = ConfigDict(title="SuperLoss")
    modifier_class: ClassVar[type[Modifier]] = SuperLoss

    name: Literal["SuperLoss"]
    threshold: float | Literal["exp", "global"] = Field(
        default=default_of(SuperLoss, "threshold"),
        description='A finite constant tau (e.g. log(num_classes)), "exp" or "global".',
    )
    regularization: float = Field(
        default=default_of(SuperLoss, "regularization"), gt=0.0, allow_inf_nan=False
    )
    momentum: float = Field(default=default_of(SuperLoss, "momentum"), gt=0.0, le=1.0)
    sync_ranks: bool = Field(
        default=default_of(SuperLoss, "sync_ranks"),
        description="Average batch means across DDP ranks (needs torch.distributed).",
    )
    use_compile: bool = Field(
        default=default_of(SuperLoss, "use_compile"),
        description="Fuse the math with torch.compile (the first call compiles).",
    )

    @field_validator("threshold", mode="before")
    @classmethod
    def _check_threshold(cls, value: object) -> object:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if math.isfinite(value):
                return value
        if isinstance(value, str) and value in ("exp", "global"):
            return value
        raise ValueError(f"expected a finite number, 'exp' or 'global', got {show(value)}")


class _SNRSpecBase(ModifierSpecBase):
    uses_noise_schedule: ClassVar[bool] = True

    noise_schedule: NoiseScheduleSpec

    @field_validator("snr_range", check_fields=False)
    @classmethod
    def _check_range(cls, value: list[float]) -> list[float]:
        if not 0.0 <= value[0] < value[1]:
            raise ValueError(f"expected [low, high] with 0 <= low < high, got {value}")
        return value


class MinSNRSpec(_SNRSpecBase):
    """:class:`~nectarloss.modifiers.MinSNR`: min-SNR-gamma weighting."""

    model_config = ConfigDict(title="MinSNR")
    modifier_class: ClassVar[type[Modifier]] = MinSNR

    name: Literal["MinSNR"]
    gamma: float = Field(default=default_of(MinSNR, "gamma"), gt=0.0, allow_inf_nan=False)
    prediction: _PredictionType = default_of(MinSNR, "prediction")


class DebiasedEstimationSpec(_SNRSpecBase):
    """:class:`~nectarloss.modifiers.DebiasedEstimation`: ``1 / sqrt(SNR)`` weighting."""

    model_config = ConfigDict(title="DebiasedEstimation")
    modifier_class: ClassVar[type[Modifier]] = DebiasedEstimation

    name: Literal["DebiasedEstimation"]
    prediction: _PredictionType = default_of(DebiasedEstimation, "prediction")
    snr_range: list[Annotated[float, Field(allow_inf_nan=False)]] = Field(
        default=default_of(DebiasedEstimation, "snr_range"), min_length=2, max_length=2
    )


class P2Spec(_SNRSpecBase):
    """:class:`~nectarloss.modifiers.P2`: perception-prioritised weighting."""

    model_config = ConfigDict(title="P2")
    modifier_class: ClassVar[type[Modifier]] = P2

    name: Literal["P2"]
    gamma: float = Field(default=default_of(P2, "gamma"), gt=0.0, allow_inf_nan=False)
    k: float = Field(default=default_of(P2, "k"), gt=0.0, allow_inf_nan=False)


class SangoiSpec(_SNRSpecBase):
    """:class:`~nectarloss.modifiers.Sangoi`: accuracy- and difficulty-aware weighting."""

    model_config = ConfigDict(title="Sangoi")
    modifier_class: ClassVar[type[Modifier]] = Sangoi

    name: Literal["Sangoi"]
    eps: float = Field(default=default_of(Sangoi, "eps"), gt=0.0, allow_inf_nan=False)
    snr_range: list[Annotated[float, Field(allow_inf_nan=False)]] = Field(
        default=default_of(Sangoi, "snr_range"), min_length=2, max_length=2
    )
    sign_safe: bool = default_of(Sangoi, "sign_safe")
    upcast: bool = default_of(Sangoi, "upcast")
    detach: bool = default_of(Sangoi, "detach")
    reference_exact: bool = default_of(Sangoi, "reference_exact")
    mask_key: str | None = default_of(Sangoi, "mask_key")
    use_compile: bool = default_of(Sangoi, "use_compile")


#: One modifier entry, chosen by its ``name``.
ModifierSpec = Annotated[
    SuperLossSpec | MinSNRSpec | DebiasedEstimationSpec | P2Spec | SangoiSpec,
    Field(discriminator="name"),
]

#: Modifier entry models by modifier name.
MODIFIER_SPECS: dict[str, type[ModifierSpecBase]] = {
    "SuperLoss": SuperLossSpec,
    "MinSNR": MinSNRSpec,
    "DebiasedEstimation": DebiasedEstimationSpec,
    "P2": P2Spec,
    "Sangoi": SangoiSpec,
}

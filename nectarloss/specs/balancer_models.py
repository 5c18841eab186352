"""Spec models of the balancers (a loss entry's ``"balancer"``)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    ConfigDict,
    Field,
)

from nectarloss.balancing import DWA, AdaptiveWeight, Balancer, GradNorm, UncertaintyWeighting
from nectarloss.specs.models import StrictModel, default_of

__all__ = [
    "BALANCER_SPECS",
    "AdaptiveWeightSpec",
    "BalancerSpec",
    "BalancerSpecBase",
    "DWASpec",
    "GradNormSpec",
    "UncertaintyWeightingSpec",
]


# ----------------------------------------------------------------------------- balancers
class BalancerSpecBase(StrictModel):
    """Fields every balancer entry has; subclasses name the balancer class."""

    #: The balancer class the entry builds.
    balancer_class: ClassVar[type[Balancer]]

    group: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "Entries naming the same group share one balancer, which balances them "
            "together; their balancer entries must then be identical."
        ),
    )

    def balancer_kwargs(self) -> dict[str, Any]:
        """Constructor keywords (everything but ``name`` and ``group``)."""
        return self.model_dump(exclude={"name", "group"})

    def references(self) -> list[str]:
        """Other losses of the spec the balancer reads (none but for AdaptiveWeight)."""
        return []


class AdaptiveWeightSpec(BalancerSpecBase):
    """:class:`~nectarloss.balancing.AdaptiveWeight`: VQGAN's adaptive weight.

    ``last_layer`` is a parameter, so it is set in Python after loading
    (``lm.get_registered_losses(strip=False)[name].balancer.last_layer = ...``).
    """

    model_config = ConfigDict(title="AdaptiveWeight")
    balancer_class: ClassVar[type[Balancer]] = AdaptiveWeight

    name: Literal["AdaptiveWeight"]
    reference: str | list[str] = Field(
        description="The reference loss name, or several whose sum is used."
    )
    eps: float = Field(default=default_of(AdaptiveWeight, "eps"), gt=0.0, allow_inf_nan=False)
    max_factor: float = Field(
        default=default_of(AdaptiveWeight, "max_factor"), gt=0.0, allow_inf_nan=False
    )
    eval_factor: float = Field(
        default=default_of(AdaptiveWeight, "eval_factor"), ge=0.0, allow_inf_nan=False
    )

    def references(self) -> list[str]:
        """The ``reference`` loss names."""
        return [self.reference] if isinstance(self.reference, str) else list(self.reference)


class UncertaintyWeightingSpec(BalancerSpecBase):
    """:class:`~nectarloss.balancing.UncertaintyWeighting`: learned log variances."""

    model_config = ConfigDict(title="UncertaintyWeighting")
    balancer_class: ClassVar[type[Balancer]] = UncertaintyWeighting

    name: Literal["UncertaintyWeighting"]
    init: float = Field(default=default_of(UncertaintyWeighting, "init"), allow_inf_nan=False)


class DWASpec(BalancerSpecBase):
    """:class:`~nectarloss.balancing.DWA`: dynamic weight average."""

    model_config = ConfigDict(title="DWA")
    balancer_class: ClassVar[type[Balancer]] = DWA

    name: Literal["DWA"]
    temperature: float = Field(default=default_of(DWA, "temperature"), gt=0.0, allow_inf_nan=False)


class GradNormSpec(BalancerSpecBase):
    """:class:`~nectarloss.balancing.GradNorm` (``shared`` is set in Python after loading)."""

    model_config = ConfigDict(title="GradNorm")
    balancer_class: ClassVar[type[Balancer]] = GradNorm

    name: Literal["GradNorm"]
    alpha: float = Field(default=default_of(GradNorm, "alpha"), ge=0.0, allow_inf_nan=False)
    lr: float = Field(default=default_of(GradNorm, "lr"), gt=0.0, allow_inf_nan=False)


#: One balancer entry, chosen by its ``name``.
BalancerSpec = Annotated[
    AdaptiveWeightSpec | UncertaintyWeightingSpec | DWASpec | GradNormSpec,
    Field(discriminator="name"),
]

#: Balancer entry models by balancer name.
BALANCER_SPECS: dict[str, type[BalancerSpecBase]] = {
    "AdaptiveWeight": AdaptiveWeightSpec,
    "UncertaintyWeighting": UncertaintyWeightingSpec,
    "DWA": DWASpec,
    "GradNorm": GradNormSpec,
}

"""Pydantic models of the JSON spec format (see ``DESIGN.md``, "JSON specs").

Every model forbids unknown keys and validates strictly: a string is never read as a
number and ``1.0`` is never read as an integer (an integer is accepted for a float).
The models only describe and check a file; :mod:`nectarloss.specs.build` builds the
loss modules, schedules and modifiers from them.

Example:
    >>> spec = SpecFile.model_validate(
    ...     {"losses": {"G_L1": {"loss": "L1Loss", "weight": 100.0, "tags": ["G"]}}}
    ... )
    >>> entry = spec.losses["G_L1"]
    >>> entry.loss, entry.weight, entry.tags, entry.modifiers
    ('L1Loss', 100.0, ['G'], [])
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationInfo,
    field_validator,
)

from nectarloss.balancing import DWA, AdaptiveWeight, Balancer, GradNorm, UncertaintyWeighting
from nectarloss.losses import available_losses, loss_aliases
from nectarloss.modifiers import (
    P2,
    DebiasedEstimation,
    MinSNR,
    Modifier,
    Sangoi,
    SuperLoss,
)
from nectarloss.schedules import (
    CURVES,
    Schedule,
    check_curve,
    check_exponential_value,
    check_milestones,
    check_window,
)
from nectarloss.specs.errors import show
from nectarloss.validation import (
    check_tags,
    closest,
    did_you_mean,
    loss_name_problem,
    weight_and_schedule_problem,
)

__all__ = [
    "BALANCER_SPECS",
    "MODIFIER_SPECS",
    "AdaptiveWeightSpec",
    "BalancerSpec",
    "BalancerSpecBase",
    "DWASpec",
    "GradNormSpec",
    "UncertaintyWeightingSpec",
    "NOISE_KINDS",
    "DebiasedEstimationSpec",
    "LossSpec",
    "MinSNRSpec",
    "ModifierSpec",
    "ModifierSpecBase",
    "NoiseScheduleSpec",
    "P2Spec",
    "SangoiSpec",
    "ScheduleSpec",
    "SpecFile",
    "SuperLossSpec",
    "closest",
    "is_import_path",
]

#: Largest table a noise schedule in a spec may describe (protects against typos).
MAX_NOISE_STEPS = 1_000_000

_NoiseKind = Literal[
    "scaled_linear", "linear", "flow_matching", "betas", "alphas_cumprod", "sigmas", "snr"
]
#: Noise-schedule kinds: closed-form constructors, then tables given as ``values``.
NOISE_KINDS: tuple[str, ...] = get_args(_NoiseKind)
_FORMULA_KINDS = NOISE_KINDS[:3]
_BETA_KINDS = NOISE_KINDS[:2]
_TABLE_KINDS = NOISE_KINDS[3:]

_CURVE_NAMES: list[JsonValue] = [*sorted(CURVES)]
_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


def is_import_path(name: str) -> bool:
    """Whether ``name`` looks like ``"package.module:Attribute"``.

    Example:
        >>> is_import_path("my_pkg.losses:MyLoss"), is_import_path("L1Loss")
        (True, False)
    """
    return bool(_IMPORT_PATH.match(name))


def _default(cls: Callable[..., Any], name: str) -> Any:
    """The default of ``cls``'s constructor parameter ``name`` (keeps models in sync)."""
    default = inspect.signature(cls).parameters[name].default
    if default is inspect.Parameter.empty:  # pragma: no cover - a modifier changed
        raise RuntimeError(f"nectarloss.specs: {cls!r}.{name} has no default.")
    return list(default) if isinstance(default, tuple) else default


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# ----------------------------------------------------------------------------- schedule
class ScheduleSpec(_Strict):
    """A weight schedule: the JSON fields of :class:`nectarloss.Schedule`.

    Defaults are :class:`~nectarloss.Schedule`'s. ``current_value`` is accepted so that
    ``Schedule.to_dict()`` output validates, but :func:`~nectarloss.specs.dump_spec`
    leaves it out (it is run state, not configuration).
    """

    model_config = ConfigDict(title="Schedule")

    schedule: str = Field(
        default=Schedule.model_fields["schedule"].default,
        description="A built-in curve name.",
        json_schema_extra={"enum": _CURVE_NAMES},
    )
    start_epoch: int = Field(default=Schedule.model_fields["start_epoch"].default, ge=0)
    end_epoch: int = Field(
        default=Schedule.model_fields["end_epoch"].default, ge=0, validate_default=True
    )
    initial_value: float = Field(
        default=Schedule.model_fields["initial_value"].default,
        ge=0.0,
        allow_inf_nan=False,
        validate_default=True,
    )
    target_value: float = Field(
        default=Schedule.model_fields["target_value"].default,
        ge=0.0,
        allow_inf_nan=False,
        validate_default=True,
    )
    current_value: float | None = Field(default=None, ge=0.0, allow_inf_nan=False)
    unit: Literal["epoch", "step"] = "epoch"
    milestones: list[int] = Field(default_factory=list)
    factor: float = Field(
        default=Schedule.model_fields["factor"].default, ge=0.0, allow_inf_nan=False
    )

    # The checks are Schedule's own (nectarloss.schedules), one per field, so that an error
    # points at the field in the file.
    @field_validator("schedule")
    @classmethod
    def _check_curve(cls, value: str) -> str:
        return check_curve(value)

    @field_validator("end_epoch")
    @classmethod
    def _check_window(cls, value: int, info: ValidationInfo) -> int:
        return check_window(info.data.get("schedule"), info.data.get("start_epoch"), value)

    @field_validator("initial_value", "target_value")
    @classmethod
    def _check_exponential(cls, value: float, info: ValidationInfo) -> float:
        return check_exponential_value(info.data.get("schedule"), value)

    @field_validator("milestones")
    @classmethod
    def _check_milestones(cls, value: list[int]) -> list[int]:
        check_milestones(value)
        return value


# ----------------------------------------------------------------------------- noise
class NoiseScheduleSpec(_Strict):
    """The diffusion noise schedule an SNR modifier looks timesteps up in.

    ``kind`` picks the :class:`~nectarloss.noise.NoiseSchedule` constructor:

    * ``"scaled_linear"`` (Stable Diffusion), ``"linear"`` (DDPM): ``num_steps``
      (default 1000), ``beta_start`` and ``beta_end`` (the constructor's defaults
      when omitted);
    * ``"flow_matching"``: ``num_steps`` only;
    * ``"betas"``, ``"alphas_cumprod"``, ``"sigmas"``, ``"snr"``: the per-timestep
      table in ``values`` (``num_steps``, if given, must equal its length).

    Example:
        >>> NoiseScheduleSpec.model_validate({"kind": "scaled_linear"}).num_steps
        1000
    """

    model_config = ConfigDict(title="NoiseSchedule")

    kind: _NoiseKind
    values: list[float] | None = Field(
        default=None, min_length=1, max_length=MAX_NOISE_STEPS, validate_default=True
    )
    num_steps: int | None = Field(default=None, ge=1, le=MAX_NOISE_STEPS, validate_default=True)
    beta_start: float | None = Field(default=None, gt=0.0, lt=1.0, validate_default=True)
    beta_end: float | None = Field(default=None, gt=0.0, lt=1.0, validate_default=True)

    @field_validator("values")
    @classmethod
    def _check_values(cls, value: list[float] | None, info: ValidationInfo) -> list[float] | None:
        kind = info.data.get("kind")
        if kind in _TABLE_KINDS and value is None:
            raise ValueError(f"expected a list of numbers (one per timestep) for kind {kind!r}")
        if kind in _FORMULA_KINDS and value is not None:
            raise ValueError(
                f"expected no values for kind {kind!r} (values are for "
                f"{', '.join(_TABLE_KINDS)}), got a list of {len(value)}"
            )
        return value

    @field_validator("num_steps")
    @classmethod
    def _check_num_steps(cls, value: int | None, info: ValidationInfo) -> int | None:
        kind = info.data.get("kind")
        if kind in _FORMULA_KINDS and value is None:
            return 1000
        values = info.data.get("values")
        if kind in _TABLE_KINDS and value is not None and values is not None:
            if value != len(values):
                raise ValueError(
                    f"expected the length of values ({len(values)}) for kind {kind!r}, got {value}"
                )
        return value

    @field_validator("beta_start", "beta_end")
    @classmethod
    def _check_betas(cls, value: float | None, info: ValidationInfo) -> float | None:
        kind = info.data.get("kind")
        if kind is not None and kind not in _BETA_KINDS and value is not None:
            raise ValueError(
                f"expected no {info.field_name} for kind {kind!r} (only for "
                f"{' and '.join(_BETA_KINDS)}), got {value}"
            )
        return value


# ----------------------------------------------------------------------------- modifiers
_PredictionType = Literal["epsilon", "v_prediction", "sample"]


class ModifierSpecBase(_Strict):
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
        default=_default(SuperLoss, "threshold"),
        description='A finite constant tau (e.g. log(num_classes)), "exp" or "global".',
    )
    regularization: float = Field(
        default=_default(SuperLoss, "regularization"), gt=0.0, allow_inf_nan=False
    )
    momentum: float = Field(default=_default(SuperLoss, "momentum"), gt=0.0, le=1.0)
    sync_ranks: bool = Field(
        default=_default(SuperLoss, "sync_ranks"),
        description="Average batch means across DDP ranks (needs torch.distributed).",
    )
    use_compile: bool = Field(
        default=_default(SuperLoss, "use_compile"),
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
    gamma: float = Field(default=_default(MinSNR, "gamma"), gt=0.0, allow_inf_nan=False)
    prediction: _PredictionType = _default(MinSNR, "prediction")


class DebiasedEstimationSpec(_SNRSpecBase):
    """:class:`~nectarloss.modifiers.DebiasedEstimation`: ``1 / sqrt(SNR)`` weighting."""

    model_config = ConfigDict(title="DebiasedEstimation")
    modifier_class: ClassVar[type[Modifier]] = DebiasedEstimation

    name: Literal["DebiasedEstimation"]
    prediction: _PredictionType = _default(DebiasedEstimation, "prediction")
    snr_range: list[Annotated[float, Field(allow_inf_nan=False)]] = Field(
        default=_default(DebiasedEstimation, "snr_range"), min_length=2, max_length=2
    )


class P2Spec(_SNRSpecBase):
    """:class:`~nectarloss.modifiers.P2`: perception-prioritised weighting."""

    model_config = ConfigDict(title="P2")
    modifier_class: ClassVar[type[Modifier]] = P2

    name: Literal["P2"]
    gamma: float = Field(default=_default(P2, "gamma"), gt=0.0, allow_inf_nan=False)
    k: float = Field(default=_default(P2, "k"), gt=0.0, allow_inf_nan=False)


class SangoiSpec(_SNRSpecBase):
    """:class:`~nectarloss.modifiers.Sangoi`: accuracy- and difficulty-aware weighting."""

    model_config = ConfigDict(title="Sangoi")
    modifier_class: ClassVar[type[Modifier]] = Sangoi

    name: Literal["Sangoi"]
    eps: float = Field(default=_default(Sangoi, "eps"), gt=0.0, allow_inf_nan=False)
    snr_range: list[Annotated[float, Field(allow_inf_nan=False)]] = Field(
        default=_default(Sangoi, "snr_range"), min_length=2, max_length=2
    )
    sign_safe: bool = _default(Sangoi, "sign_safe")
    upcast: bool = _default(Sangoi, "upcast")
    detach: bool = _default(Sangoi, "detach")
    reference_exact: bool = _default(Sangoi, "reference_exact")
    mask_key: str | None = _default(Sangoi, "mask_key")
    use_compile: bool = _default(Sangoi, "use_compile")


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


# ----------------------------------------------------------------------------- balancers
class BalancerSpecBase(_Strict):
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
    eps: float = Field(default=_default(AdaptiveWeight, "eps"), gt=0.0, allow_inf_nan=False)
    max_factor: float = Field(
        default=_default(AdaptiveWeight, "max_factor"), gt=0.0, allow_inf_nan=False
    )
    eval_factor: float = Field(
        default=_default(AdaptiveWeight, "eval_factor"), ge=0.0, allow_inf_nan=False
    )

    def references(self) -> list[str]:
        """The ``reference`` loss names."""
        return [self.reference] if isinstance(self.reference, str) else list(self.reference)


class UncertaintyWeightingSpec(BalancerSpecBase):
    """:class:`~nectarloss.balancing.UncertaintyWeighting`: learned log variances."""

    model_config = ConfigDict(title="UncertaintyWeighting")
    balancer_class: ClassVar[type[Balancer]] = UncertaintyWeighting

    name: Literal["UncertaintyWeighting"]
    init: float = Field(default=_default(UncertaintyWeighting, "init"), allow_inf_nan=False)


class DWASpec(BalancerSpecBase):
    """:class:`~nectarloss.balancing.DWA`: dynamic weight average."""

    model_config = ConfigDict(title="DWA")
    balancer_class: ClassVar[type[Balancer]] = DWA

    name: Literal["DWA"]
    temperature: float = Field(default=_default(DWA, "temperature"), gt=0.0, allow_inf_nan=False)


class GradNormSpec(BalancerSpecBase):
    """:class:`~nectarloss.balancing.GradNorm` (``shared`` is set in Python after loading)."""

    model_config = ConfigDict(title="GradNorm")
    balancer_class: ClassVar[type[Balancer]] = GradNorm

    name: Literal["GradNorm"]
    alpha: float = Field(default=_default(GradNorm, "alpha"), ge=0.0, allow_inf_nan=False)
    lr: float = Field(default=_default(GradNorm, "lr"), gt=0.0, allow_inf_nan=False)


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


# ----------------------------------------------------------------------------- losses
class LossSpec(_Strict):
    """One loss entry: a catalog loss with its weight, schedule, tags and modifiers.

    With ``modifiers`` the loss is built with ``reduction="none"`` (when its factory
    takes ``reduction``), since modifiers work on the per-sample loss.
    """

    model_config = ConfigDict(title="Loss")

    loss: str = Field(
        description=(
            "A catalog name (torch class names such as L1Loss, MSELoss, "
            "BCEWithLogitsLoss, TripletMarginLoss, our Sobel, Laplacian, Perceptual, "
            "anything added with @register_loss, or an alias such as L1), or "
            '"package.module:Name" when the loader is called with allow_imports=True.'
        )
    )
    kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Constructor keyword arguments of the loss."
    )
    weight: float = Field(default=1.0, ge=0.0, allow_inf_nan=False)
    schedule: ScheduleSpec | None = None
    tags: list[str] = Field(default_factory=list)
    modifiers: list[ModifierSpec] = Field(default_factory=list)
    balancer: BalancerSpec | None = None

    @field_validator("loss")
    @classmethod
    def _check_loss(cls, value: str, info: ValidationInfo) -> str:
        known = available_losses()
        aliases = loss_aliases()
        if value in known or value in aliases:
            return value
        if is_import_path(value):
            allow = bool(info.context.get("allow_imports")) if info.context else False
            if not allow:
                raise ValueError(
                    f"expected a catalog loss name, got the import path {value!r}; a spec "
                    "imports Python code only when the caller opts in with "
                    "load_spec(..., allow_imports=True)"
                )
            return value
        raise ValueError(
            f"expected a loss name from the catalog, got {value!r}"
            f"{did_you_mean(value, known + list(aliases))}; see "
            "nectarloss.losses.available_losses()"
        )

    @field_validator("schedule")
    @classmethod
    def _check_one_weight(cls, value: ScheduleSpec | None, info: ValidationInfo) -> object:
        weight = info.data.get("weight")  # absent when it failed its own check
        problem = None if weight is None else weight_and_schedule_problem(weight, value is not None)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("tags")
    @classmethod
    def _check_tags(cls, value: list[str]) -> list[str]:
        try:
            return check_tags("", value)
        except ValueError as exc:  # the spec error names the JSON path; keep the detail
            raise ValueError(str(exc).removeprefix(": `tags` ").rstrip(".")) from None


class SpecFile(_Strict):
    """A whole spec file.

    Additions to the format in ``DESIGN.md``: the optional ``"$schema"`` (a JSON
    Schema reference for editors, ignored) and ``"description"`` (free text) keys.
    """

    model_config = ConfigDict(title="nectarloss loss spec", populate_by_name=False)

    schema_: str | None = Field(
        default=None,
        alias="$schema",
        description="Optional JSON Schema reference for editors; ignored by the loader.",
    )
    description: str | None = Field(default=None, description="Free text; ignored.")
    extends: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "A shipped spec name (e.g. pix2pix_basic) or a path ending in .json, relative "
            "to this file. Entries here replace inherited entries of the same name "
            "wholesale; null removes an inherited entry."
        ),
    )
    losses: dict[str, LossSpec | None] = Field(default_factory=dict)

    @field_validator("losses")
    @classmethod
    def _check_names(cls, value: dict[str, LossSpec | None]) -> dict[str, LossSpec | None]:
        for name in value:
            why = loss_name_problem(name)
            if why is not None:
                raise ValueError(f"expected loss names {why}, got {name!r}")
        return value

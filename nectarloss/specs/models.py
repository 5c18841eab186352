"""Pydantic models of the JSON spec format (see ``DESIGN.md``, "JSON specs"): the base.

Every model forbids unknown keys and validates strictly (:class:`StrictModel`): a string
is never read as a number and ``1.0`` is never read as an integer (an integer is accepted
for a float). The models only describe and check a file; :mod:`nectarloss.specs.build`
builds the loss modules, schedules and modifiers from them. This module holds the base
and the schedule entries; :mod:`~nectarloss.specs.modifier_models`,
:mod:`~nectarloss.specs.balancer_models` and :mod:`~nectarloss.specs.loss_models` (a
loss entry and the whole file) build on it.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationInfo,
    field_validator,
)

from nectarloss.schedules import (
    CURVES,
    Schedule,
    check_curve,
    check_exponential_value,
    check_milestones,
    check_window,
)

__all__ = [
    "MAX_NOISE_STEPS",
    "NOISE_KINDS",
    "NoiseScheduleSpec",
    "ScheduleSpec",
    "StrictModel",
    "default_of",
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


def default_of(cls: Callable[..., Any], name: str) -> Any:
    """The default of ``cls``'s constructor parameter ``name`` (keeps models in sync)."""
    default = inspect.signature(cls).parameters[name].default
    if default is inspect.Parameter.empty:  # pragma: no cover - a modifier changed
        raise RuntimeError(f"nectarloss.specs: {cls!r}.{name} has no default.")
    return list(default) if isinstance(default, tuple) else default


class StrictModel(BaseModel):
    """A model that forbids unknown keys and validates strictly."""

    model_config = ConfigDict(extra="forbid", strict=True)


# ----------------------------------------------------------------------------- schedule
class ScheduleSpec(StrictModel):
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
class NoiseScheduleSpec(StrictModel):
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

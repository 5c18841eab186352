"""Spec models of a loss entry (:class:`LossSpec`) and of a whole spec file (:class:`SpecFile`).

Example:
    >>> spec = SpecFile.model_validate(
    ...     {"losses": {"G_L1": {"loss": "L1Loss", "weight": 100.0, "tags": ["G"]}}}
    ... )
    >>> entry = spec.losses["G_L1"]
    >>> entry.loss, entry.weight, entry.tags, entry.modifiers
    ('L1Loss', 100.0, ['G'], [])
"""

from __future__ import annotations

from typing import Any

from pydantic import (
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from nectarloss.losses import available_losses, loss_aliases
from nectarloss.specs.balancer_models import BalancerSpec
from nectarloss.specs.models import ScheduleSpec, StrictModel, is_import_path
from nectarloss.specs.modifier_models import ModifierSpec
from nectarloss.validation import (
    check_tags,
    did_you_mean,
    loss_name_problem,
    weight_and_schedule_problem,
)

__all__ = ["LossSpec", "SpecFile"]


# ----------------------------------------------------------------------------- losses
class LossSpec(StrictModel):
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


class SpecFile(StrictModel):
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

"""Build spec entries into :class:`~nectarloss.LMLoss` objects.

Each validated :class:`~nectarloss.specs.loss_models.LossSpec` becomes a loss module (from the
catalog, or an imported ``"package.module:Name"``), its :class:`~nectarloss.Schedule`,
its modifiers and their noise schedules. A constructor that rejects its arguments is
reported as a :class:`~nectarloss.specs.errors.Problem` at the entry's JSON path.

Example:
    >>> from nectarloss.specs.loss_models import LossSpec
    >>> entry = build_entry("G_L1", LossSpec.model_validate({"loss": "L1Loss", "weight": 10}))
    >>> entry.function, entry.loss_weight
    (L1Loss(), 10.0)
"""

from __future__ import annotations

import importlib
import inspect
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from pydantic import ValidationError
from torch import nn

from nectarloss.balancing import Balancer
from nectarloss.errors import UnknownLossError
from nectarloss.losses import LossEntry, get_loss_entry
from nectarloss.losses.catalog import accepts_keyword, parameters_of
from nectarloss.modifiers import Modifier
from nectarloss.noise import NoiseSchedule
from nectarloss.records import LMLoss
from nectarloss.schedules import Schedule
from nectarloss.specs.balancer_models import BalancerSpecBase
from nectarloss.specs.errors import Loc, Problem, SpecError, json_path, show
from nectarloss.specs.loss_models import LossSpec
from nectarloss.specs.models import NoiseScheduleSpec, ScheduleSpec
from nectarloss.specs.modifier_models import ModifierSpecBase
from nectarloss.specs.validate import first_error, raise_validation

__all__ = ["TENSOR_KWARGS", "build_entry", "build_noise_schedule"]

#: Constructor keywords given as JSON lists that torch losses expect as tensors.
TENSOR_KWARGS = frozenset({"weight", "pos_weight"})

_BACKTICK = re.compile(r"`(\w+)")


def _kwarg_type_problem(value: object, default: object) -> str | None:
    """What a JSON value for a parameter with ``default`` should be, if it is not."""
    if isinstance(default, bool):
        ok, what = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, what = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = ok and math.isfinite(float(value))  # type: ignore[arg-type]
        what = "a finite number"
    elif isinstance(default, str):
        ok, what = isinstance(value, str), "a string"
    else:
        return None
    return None if ok else f"expected {what} (the default is {default!r}), got {show(value)}"


def _import_factory(target: str, loc: Loc) -> Callable[..., Any]:
    module_name, _, attr_path = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr_path.split("."):
            obj = getattr(obj, part)
    except Exception as exc:  # noqa: BLE001 - any import failure is the spec's problem
        raise Problem(
            loc, f"expected an importable object, got {target!r} ({type(exc).__name__}: {exc})"
        ) from None
    if not callable(obj):
        raise Problem(loc, f"expected a callable loss class or factory, got {target!r}")
    factory: Callable[..., Any] = obj
    return factory


def _prepare_kwargs(
    spec: LossSpec, params: dict[str, inspect.Parameter] | None, base: Loc
) -> dict[str, Any]:
    kwargs = dict(spec.kwargs)
    for key, value in spec.kwargs.items():
        param = params.get(key) if params is not None else None
        if param is None:
            continue
        why = _kwarg_type_problem(value, param.default)
        if why is not None:
            raise Problem((*base, "kwargs", key), why)
        if key in TENSOR_KWARGS and isinstance(value, list):
            try:
                kwargs[key] = torch.tensor(value, dtype=torch.float32)
            except Exception:  # noqa: BLE001 - torch raises several types here
                raise Problem(
                    (*base, "kwargs", key),
                    f"expected a (nested) list of numbers to make a tensor, got {show(value)}",
                ) from None
    if spec.modifiers:
        reduction = kwargs.get("reduction")
        if reduction is not None and reduction != "none":
            raise Problem(
                (*base, "kwargs", "reduction"),
                "expected 'none' or no reduction (modifiers need the per-sample loss and "
                f"set reduction='none' themselves), got {show(reduction)}",
            )
        if accepts_keyword(params, "reduction"):
            kwargs["reduction"] = "none"
    return kwargs


def _catalog_entry(name: str) -> LossEntry | None:
    """The catalog entry of ``name``, or ``None`` (an import path, validated already)."""
    try:
        return get_loss_entry(name)
    except UnknownLossError:
        return None


def _build_module(spec: LossSpec, base: Loc) -> nn.Module | Callable[..., Any]:
    name = spec.loss
    entry = _catalog_entry(name)
    if entry is None:
        factory = _import_factory(name, (*base, "loss"))
        display = name
    else:
        factory, display = entry.factory, entry.name
    kwargs = _prepare_kwargs(spec, parameters_of(factory), base)
    try:
        if entry is None:
            module: nn.Module | Callable[..., Any] = factory(**kwargs)
        else:
            module = entry.build(**kwargs)
    except Exception as exc:  # noqa: BLE001 - constructors raise anything
        raise Problem(
            (*base, "kwargs"), f"expected keyword arguments that {display} accepts; {exc}"
        ) from None
    if not callable(module):
        raise Problem((*base, "loss"), f"expected {display} to build a callable loss")
    return module


def _build_schedule(spec: ScheduleSpec, loc: Loc) -> Schedule:
    # current_value is run state that older Schedule.to_dict() output carried: not a field
    fields = spec.model_dump(exclude_none=True, exclude={"current_value"})
    try:
        return Schedule(**fields)
    except ValidationError as exc:
        raise Problem(loc, first_error(exc)) from None


def _field_loc(loc: Loc, message: str, fields: Sequence[str]) -> Loc:
    """Narrow ``loc`` to the field a constructor message names in backticks, if any."""
    match = _BACKTICK.search(message)
    if match and match.group(1) in fields:
        return (*loc, match.group(1))
    return loc


def build_noise_schedule(spec: NoiseScheduleSpec | Mapping[str, Any]) -> NoiseSchedule:
    """Build a :class:`~nectarloss.noise.NoiseSchedule` from its spec.

    The schedule keeps the spec as its ``config``, so that
    :func:`~nectarloss.specs.dump_spec` writes it back as given.

    Args:
        spec: A :class:`~nectarloss.specs.models.NoiseScheduleSpec` or its dict form,
            e.g. ``{"kind": "scaled_linear", "num_steps": 1000}``.

    Returns:
        The schedule.

    Raises:
        SpecError: If the spec is invalid or the constructor rejects its values.

    Example:
        >>> build_noise_schedule({"kind": "flow_matching", "num_steps": 4}).snr_table
        tensor([9.0000, 1.0000, 0.1111, 0.0000])
    """
    if not isinstance(spec, NoiseScheduleSpec):
        if not isinstance(spec, Mapping):
            raise TypeError(
                "build_noise_schedule: `spec` expected a NoiseScheduleSpec or a dict, "
                f"got {type(spec).__name__}."
            )
        try:
            spec = NoiseScheduleSpec.model_validate(spec)
        except ValidationError as exc:
            raise_validation("noise_schedule", exc)
    try:
        return build_noise(spec, ())
    except Problem as problem:
        raise SpecError("noise_schedule", [(json_path(problem.loc), problem.detail)]) from None


def build_noise(spec: NoiseScheduleSpec, loc: Loc) -> NoiseSchedule:
    """Build the schedule ``spec`` describes; it carries ``spec`` as its ``config``.

    Raises:
        Problem: At ``loc`` (or the field named), if the constructor rejects the values.
    """
    kind = spec.kind
    options = spec.model_dump(exclude_none=True, exclude={"kind", "values"})
    try:
        if kind == "scaled_linear":
            schedule = NoiseSchedule.scaled_linear(**options)
        elif kind == "linear":
            schedule = NoiseSchedule.linear(**options)
        elif kind == "flow_matching":
            schedule = NoiseSchedule.flow_matching(**options)
        else:
            values = spec.values if spec.values is not None else []
            constructors: dict[str, Callable[[list[float]], NoiseSchedule]] = {
                "betas": NoiseSchedule.from_betas,
                "alphas_cumprod": NoiseSchedule.from_alphas_cumprod,
                "sigmas": NoiseSchedule.from_sigmas,
                "snr": NoiseSchedule,
            }
            schedule = constructors[kind](values)
    except (TypeError, ValueError, RuntimeError) as exc:
        field = "values" if kind in ("betas", "alphas_cumprod", "sigmas", "snr") else None
        fields = ("num_steps", "beta_start", "beta_end")
        where = (*loc, field) if field else _field_loc(loc, str(exc), fields)
        raise Problem(where, f"expected a valid {kind!r} noise schedule; {exc}") from None
    schedule.config = spec.model_dump(exclude_none=True)
    return schedule


def _build_modifier(spec: ModifierSpecBase, loc: Loc) -> Modifier:
    kwargs = spec.modifier_kwargs()
    if spec.uses_noise_schedule:
        noise: NoiseScheduleSpec = getattr(spec, "noise_schedule")  # noqa: B009
        kwargs["noise_schedule"] = build_noise(noise, (*loc, "noise_schedule"))
    cls = spec.modifier_class
    try:
        return cls(**kwargs)
    except Exception as exc:  # noqa: BLE001 - constructors raise anything
        where = _field_loc(loc, str(exc), list(type(spec).model_fields))
        raise Problem(where, f"expected valid {cls.__name__} options; {exc}") from None


def _build_balancer(
    spec: BalancerSpecBase, loc: Loc, groups: dict[str, tuple[BalancerSpecBase, Balancer]]
) -> Balancer:
    """A new balancer, or the one already built for ``spec.group`` (same options only)."""
    group = spec.group
    if group is not None and group in groups:
        first, balancer = groups[group]
        if first != spec:
            raise Problem(
                (*loc, "group"),
                f"expected the same balancer entry as the group's other losses "
                f"({first.model_dump(exclude_defaults=True)}), got "
                f"{spec.model_dump(exclude_defaults=True)}",
            )
        return balancer
    cls = spec.balancer_class
    try:
        balancer = cls(**spec.balancer_kwargs())
    except Exception as exc:  # noqa: BLE001 - constructors raise anything
        where = _field_loc(loc, str(exc), list(type(spec).model_fields))
        raise Problem(where, f"expected valid {cls.__name__} options; {exc}") from None
    balancer.group = group
    if group is not None:
        groups[group] = (spec, balancer)
    return balancer


def build_entry(
    name: str,
    spec: LossSpec,
    groups: dict[str, tuple[BalancerSpecBase, Balancer]] | None = None,
) -> LMLoss:
    """Build the :class:`~nectarloss.LMLoss` of the entry ``name``.

    Args:
        name: The entry's name.
        spec: The validated entry.
        groups: Balancers built so far by group name (shared by the entries of one
            file); ``None`` builds a fresh balancer.

    Raises:
        Problem: At the entry's JSON path, if a part cannot be built.
    """
    base: Loc = ("losses", name)
    module = _build_module(spec, base)
    schedule = _build_schedule(spec.schedule, (*base, "schedule")) if spec.schedule else None
    modifiers = [_build_modifier(m, (*base, "modifiers", i)) for i, m in enumerate(spec.modifiers)]
    balancer = (
        None
        if spec.balancer is None
        else _build_balancer(spec.balancer, (*base, "balancer"), {} if groups is None else groups)
    )
    return LMLoss(
        name=name,
        function=module,
        loss_weight=spec.weight,
        schedule=schedule,
        tags=list(spec.tags),
        modifiers=modifiers,
        balancer=balancer,
    )

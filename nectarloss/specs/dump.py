"""Write registered losses back as a spec: the inverse of loading and building.

:func:`dump_spec` turns ``dict[str, LMLoss]`` into the JSON form that
:func:`~nectarloss.specs.load_spec` reads: catalog names, the constructor arguments that
differ from the defaults, schedules without run state, modifiers with every option, and
noise schedules as they were built (:func:`dump_noise_schedule`).

Example:
    >>> from nectarloss.specs import load_spec
    >>> dump_spec(load_spec("pix2pix_basic"))["losses"]["G_L1"]
    {'loss': 'L1Loss', 'kwargs': {}, 'weight': 100.0, 'tags': ['G']}
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import torch
from torch import Tensor, nn

from nectarloss.balancing import Balancer
from nectarloss.losses import find_loss_entry
from nectarloss.losses.catalog import KEYWORD_KINDS, parameters_of
from nectarloss.noise import NoiseSchedule
from nectarloss.records import LMLoss
from nectarloss.specs.balancer_models import BALANCER_SPECS
from nectarloss.specs.build import build_noise
from nectarloss.specs.errors import Loc, Problem, SpecError, json_path
from nectarloss.specs.models import NoiseScheduleSpec
from nectarloss.specs.modifier_models import MODIFIER_SPECS

__all__ = ["dump_noise_schedule", "dump_spec"]


def _jsonable(value: object) -> bool:
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(_jsonable(v) for v in value)
    return False


def _plain(value: object) -> Any:
    if isinstance(value, Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _equal(a: object, b: object) -> bool:
    if type(a) is bool or type(b) is bool:
        return a is b
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - exotic __eq__
        return False


def _loss_name_and_factory(
    function: Callable[..., Any], loc: Loc
) -> tuple[str, Callable[..., Any]]:
    if isinstance(function, nn.Module):
        entry = find_loss_entry(function)
        if entry is not None:
            return entry.name, entry.factory
        target: Any = type(function)
    else:
        target = function
    module = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        raise Problem(
            (*loc, "loss"),
            "expected a catalog loss module or an importable class, got "
            f"{type(function).__name__} (register it with @register_loss)",
        )
    return f"{module}:{qualname}", target


def _module_kwargs(
    function: Callable[..., Any],
    factory: Callable[..., Any],
    has_modifiers: bool,
    loc: Loc,
) -> dict[str, Any]:
    params = parameters_of(factory) or {}
    out: dict[str, Any] = {}
    for pname, param in params.items():
        if param.kind not in KEYWORD_KINDS:
            continue
        try:
            value = _plain(getattr(function, pname))
        except AttributeError:
            if param.default is inspect.Parameter.empty:
                raise Problem(
                    (*loc, "kwargs", pname),
                    f"expected an attribute {pname!r} to recover the required argument, got none",
                ) from None
            continue
        if pname == "reduction" and has_modifiers and value == "none":
            continue
        if param.default is not inspect.Parameter.empty and _equal(value, param.default):
            continue
        if not _jsonable(value):
            raise Problem(
                (*loc, "kwargs", pname),
                f"expected a JSON value to write, got {type(value).__name__}",
            )
        out[pname] = value
    return out


def dump_noise_schedule(schedule: NoiseSchedule) -> dict[str, Any]:
    """The spec form of a noise schedule (the inverse of ``build_noise_schedule``).

    A schedule built from a spec is written as it was given (its ``config``), unless its
    table changed since (e.g. a checkpoint of another schedule was loaded). Any other
    schedule is matched against the default ``scaled_linear``, ``linear`` and
    ``flow_matching`` tables of its length, and otherwise written as its SNR table
    (``kind: "snr"``).

    Example:
        >>> dump_noise_schedule(NoiseSchedule.scaled_linear(num_steps=50))
        {'kind': 'scaled_linear', 'num_steps': 50}
    """
    table = schedule.snr_table.detach().cpu()
    config = schedule.config
    if config is not None:
        rebuilt = build_noise(NoiseScheduleSpec.model_validate(config), ())
        if torch.equal(rebuilt.snr_table, table):
            return dict(config)
    for kind in ("scaled_linear", "linear", "flow_matching"):
        candidate = {"kind": kind, "num_steps": schedule.num_steps}
        rebuilt = build_noise(NoiseScheduleSpec.model_validate(candidate), ())
        if torch.equal(rebuilt.snr_table, table):
            return candidate
    return {"kind": "snr", "values": table.double().tolist()}


def _refuse(
    obj: object, what: str, known: Mapping[str, object], loc: Loc, custom: bool = False
) -> NoReturn:
    """Raise the :class:`Problem` for an object a spec cannot name."""
    also = " or one with a spec_config() method" if custom else ""
    raise Problem(
        loc,
        f"expected {what} ({', '.join(known)}){also}, got {type(obj).__name__}",
    )


def _dump_modifier(modifier: object, loc: Loc) -> dict[str, Any]:
    hook = getattr(modifier, "spec_config", None)
    if callable(hook):
        custom = hook()
        if isinstance(custom, dict):
            return {str(k): v for k, v in custom.items()}
    name = type(modifier).__name__
    spec_cls = MODIFIER_SPECS.get(name)
    if spec_cls is None or type(modifier) is not spec_cls.modifier_class:
        _refuse(modifier, "a modifier from nectarloss.modifiers", MODIFIER_SPECS, loc, custom=True)
    config: dict[str, Any] = {"name": name}
    for field in spec_cls.model_fields:
        if field == "name":
            continue
        if field == "noise_schedule":
            config[field] = dump_noise_schedule(getattr(modifier, field))
        else:
            config[field] = _plain(getattr(modifier, field))
    return config


def _dump_entry(entry: LMLoss, loc: Loc) -> dict[str, Any]:
    name, factory = _loss_name_and_factory(entry.function, loc)
    out: dict[str, Any] = {
        "loss": name,
        "kwargs": _module_kwargs(entry.function, factory, bool(entry.modifiers), loc),
        "weight": float(entry.loss_weight),
    }
    if entry.schedule is not None:
        if entry.schedule.is_custom:
            raise Problem(
                (*loc, "schedule"),
                "expected a built-in curve name to write, got a custom callable",
            )
        schedule = entry.schedule.to_dict()
        schedule.pop("current_value", None)
        out["schedule"] = schedule
    out["tags"] = list(entry.tags)
    if entry.modifiers:
        out["modifiers"] = [
            _dump_modifier(m, (*loc, "modifiers", i)) for i, m in enumerate(entry.modifiers)
        ]
    if entry.balancer is not None:
        out["balancer"] = _dump_balancer(entry.balancer, (*loc, "balancer"))
    return out


def _dump_balancer(balancer: Balancer, loc: Loc) -> dict[str, Any]:
    """``{"name": ..., "group": ..., **options}``.

    A balancer shared by several losses gets a group (its spec group, else its first
    loss's name), so it stays shared when loaded.
    """
    name = type(balancer).__name__
    spec_cls = BALANCER_SPECS.get(name)
    if spec_cls is None or type(balancer) is not spec_cls.balancer_class:
        _refuse(balancer, "a balancer from nectarloss.balancing", BALANCER_SPECS, loc)
    out: dict[str, Any] = {"name": name}
    group = balancer.group or (balancer.members[0] if len(balancer.members) > 1 else None)
    if group is not None:
        out["group"] = group
    out.update(_plain(balancer.spec_config()))
    return out


def dump_spec(losses: Mapping[str, LMLoss], *, description: str | None = None) -> dict[str, Any]:
    """Write registered losses back as a spec (the inverse of :func:`load_spec`).

    Catalog modules are written by their catalog name, with the constructor arguments
    recoverable from the module's attributes that differ from the defaults (tensor
    arguments such as ``pos_weight`` as lists). With modifiers, ``reduction="none"``
    is left out (the loader sets it). Schedules are written without their run state
    (``current_value``), modifiers with every option, and noise schedules as built
    (see :func:`dump_noise_schedule`).

    Args:
        losses: Losses by name, e.g. ``lm.get_registered_losses()``.
        description: Optional ``"description"`` for the spec.

    Returns:
        A JSON-compatible dict (``orjson.dumps`` writes it) that :func:`load_spec`
        turns back into equivalent losses.

    Raises:
        SpecError: If an entry cannot be written: a module outside the catalog that
            is not importable, a constructor argument that is not a JSON value, a custom
            schedule callable, or a modifier that is not one of ours.

    Example:
        >>> from nectarloss.specs import metric_triplet
        >>> dump_spec(metric_triplet(margin=0.5))
        {'losses': {'triplet': {'loss': 'TripletMarginLoss', 'kwargs': {'margin': 0.5}, \
'weight': 1.0, 'tags': ['metric']}}}
    """
    if not isinstance(losses, Mapping):
        raise TypeError(
            f"dump_spec: `losses` expected a dict of LMLoss, got {type(losses).__name__}."
        )
    result: dict[str, Any] = {}
    if description is not None:
        result["description"] = description
    out: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for key, entry in losses.items():
        loc: Loc = ("losses", str(key))
        if not isinstance(entry, LMLoss):
            problems.append((json_path(loc), f"expected an LMLoss, got {type(entry).__name__}"))
            continue
        try:
            out[str(key)] = _dump_entry(entry, loc)
        except Problem as problem:
            problems.append((json_path(problem.loc), problem.detail))
    if problems:
        raise SpecError("dump_spec", problems)
    result["losses"] = out
    return result

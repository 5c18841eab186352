"""Validate a spec document against the models and explain what pydantic rejected.

:func:`validate_document` checks a parsed JSON value with
:class:`~nectarloss.specs.loss_models.SpecFile`; :func:`raise_validation` turns each pydantic
error into a ``(json_path, detail)`` problem of one :class:`~nectarloss.specs.SpecError`,
with the keys a model accepts and the closest valid names.

Example:
    >>> validate_document({"losses": {"G_L1": {"loss": "L1Loss", "wieght": 2}}}, "a.json", False)
    Traceback (most recent call last):
    ...
    nectarloss.errors.SpecError: a.json: losses.G_L1 expected only the keys loss, \
kwargs, weight, schedule, tags, modifiers, balancer, got unknown key 'wieght' \
(did you mean 'weight'?).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from pydantic import ValidationError

from nectarloss.specs.balancer_models import BALANCER_SPECS
from nectarloss.specs.errors import Loc, SpecError, did_you_mean, json_path, show
from nectarloss.specs.loss_models import LossSpec, SpecFile
from nectarloss.specs.models import NoiseScheduleSpec, ScheduleSpec
from nectarloss.specs.modifier_models import MODIFIER_SPECS

__all__ = ["first_error", "raise_validation", "spec_json_schema", "validate_document"]

_EXPECTED_TYPE = {
    "float_type": "a number",
    "float_parsing": "a number",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "finite_number": "a finite number",
    "string_too_short": "a non-empty string",
}
_BOUNDS = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}


def _model_at(raw_loc: Loc) -> type[Any] | None:
    """The model that owns the keys at ``raw_loc`` (pydantic's location, tags included)."""
    if not raw_loc:
        return SpecFile
    if len(raw_loc) == 2 and raw_loc[0] == "losses":
        return LossSpec
    last = raw_loc[-1]
    if last == "schedule":
        return ScheduleSpec
    if last == "noise_schedule":
        return NoiseScheduleSpec
    if isinstance(last, str) and last in MODIFIER_SPECS and len(raw_loc) >= 2:
        return MODIFIER_SPECS[last]
    if isinstance(last, str) and last in BALANCER_SPECS and raw_loc[-2:-1] == ("balancer",):
        return BALANCER_SPECS[last]
    return None


def _clean_loc(raw_loc: Loc) -> Loc:
    """Drop the discriminator tags pydantic puts after a modifier index or ``balancer``."""
    out: list[str | int] = []
    for i, item in enumerate(raw_loc):
        after_index = i >= 2 and isinstance(raw_loc[i - 1], int) and raw_loc[i - 2] == "modifiers"
        if after_index and isinstance(item, str) and item in MODIFIER_SPECS:
            continue
        if i >= 1 and raw_loc[i - 1] == "balancer" and item in BALANCER_SPECS:
            continue
        out.append(item)
    return tuple(out)


def _describe(error: Mapping[str, Any]) -> tuple[str, str]:
    """Turn one pydantic error into ``(json_path, detail)``."""
    raw_loc: Loc = tuple(error["loc"])
    loc = _clean_loc(raw_loc)
    kind = error["type"]
    ctx = error.get("ctx") or {}
    got = show(error.get("input"))
    is_balancer = "balancer" in loc
    names = list(BALANCER_SPECS if is_balancer else MODIFIER_SPECS)
    kind_name = "balancer" if is_balancer else "modifier"
    if kind == "extra_forbidden":
        key = str(loc[-1])
        model = _model_at(raw_loc[:-1])
        known = [f.alias or n for n, f in model.model_fields.items()] if model else []
        hint = did_you_mean(key, known)
        what = f"only the keys {', '.join(known)}" if known else "no such key"
        return json_path(loc[:-1]), f"expected {what}, got unknown key {key!r}{hint}"
    if kind == "missing":
        return json_path(loc), "expected a value (the key is required), got nothing"
    if kind == "union_tag_invalid":
        given = error.get("input")
        tag = given.get("name") if isinstance(given, Mapping) else ctx.get("tag")
        shown = repr(tag) if isinstance(tag, str) else show(tag)
        hint = did_you_mean(tag, names) if isinstance(tag, str) else ""
        return json_path((*loc, "name")), (
            f"expected a {kind_name} name, one of {', '.join(names)}, got {shown}{hint}"
        )
    if kind == "union_tag_not_found":
        return json_path((*loc, "name")), (
            f"expected a {kind_name} name, one of {', '.join(names)}, got nothing"
        )
    if kind in ("value_error", "assertion_error"):
        return json_path(loc), str(ctx.get("error", error.get("msg", "")))
    if kind == "literal_error":
        return json_path(loc), f"expected one of {ctx.get('expected')}, got {got}"
    if kind in _BOUNDS:
        key, sign = _BOUNDS[kind]
        return json_path(loc), f"expected a number {sign} {ctx.get(key)}, got {got}"
    if kind in ("too_short", "too_long"):
        low, high = ctx.get("min_length"), ctx.get("max_length")
        size = f"at least {low} items" if kind == "too_short" else f"at most {high} items"
        return json_path(loc), f"expected a list of {size}, got {got}"
    expected = _EXPECTED_TYPE.get(kind)
    if expected is not None:
        return json_path(loc), f"expected {expected}, got {got}"
    return json_path(loc), f"expected valid input ({error.get('msg')}), got {got}"


def raise_validation(source: str, exc: ValidationError) -> NoReturn:
    """Raise one :class:`SpecError` for ``source`` listing each distinct problem of ``exc``.

    Args:
        source: The file (or ``"<dict>"``, ...) the errors are about.
        exc: What pydantic raised while validating a model of :mod:`nectarloss.specs.models`.

    Raises:
        SpecError: Always.
    """
    problems: list[tuple[str, str]] = []
    for error in exc.errors(include_url=False):
        item = _describe(error)
        if item not in problems:
            problems.append(item)
    raise SpecError(source, problems) from None


def first_error(exc: ValidationError) -> str:
    """The message of the first error in ``exc`` (a validator's own words when it has them)."""
    errors = exc.errors(include_url=False)
    if not errors:  # pragma: no cover - pydantic always has one
        return str(exc)
    ctx = errors[0].get("ctx") or {}
    return str(ctx.get("error", errors[0].get("msg")))


def validate_document(raw: object, display: str, allow_imports: bool) -> SpecFile:
    """Check a parsed JSON value as a whole spec file.

    Args:
        raw: The parsed document.
        display: How to name the document in errors.
        allow_imports: Accept ``"package.module:Name"`` losses.

    Returns:
        The validated model.

    Raises:
        SpecError: If ``raw`` is not an object or does not match the models.
    """
    if not isinstance(raw, Mapping):
        raise SpecError(
            display, [("", f'expected a JSON object with a "losses" key, got {show(raw)}')]
        )
    try:
        return SpecFile.model_validate(raw, context={"allow_imports": allow_imports})
    except ValidationError as exc:
        raise_validation(display, exc)


def spec_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a spec file, generated from the models.

    Catalog names are not enumerated (the catalog is extensible): the loader checks
    them and suggests the closest valid names.

    Example:
        >>> sorted(spec_json_schema()["properties"])
        ['$schema', 'description', 'extends', 'losses']
    """
    schema = SpecFile.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}

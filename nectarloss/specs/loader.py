"""Load, merge, validate and dump JSON loss specs.

A spec file is read with orjson, checked against the pydantic models in
:mod:`nectarloss.specs.models`, merged with the spec it ``extends`` and built into
``dict[str, LMLoss]``, ready for ``LossManager.init_from_spec``. Every mistake raises
one :class:`SpecError` naming the file, the JSON path and what was expected.

``extends``:
    A shipped spec's name (``"pix2pix_basic"``, see :func:`available_specs`) or a path
    to a ``.json`` file (any value ending in ``.json`` or holding a path separator),
    relative to the extending file. The parent's entries come first, in order. A child
    entry with the same name **replaces the inherited entry wholesale** (restate every
    field you want to keep; there is no partial merge, so an entry always reads the same
    wherever it is), a new name is appended, and ``null`` removes an inherited entry.
    Chains may be any depth up to :data:`MAX_EXTENDS_DEPTH`; a cycle is an error.

Python code:
    ``"loss": "package.module:Name"`` imports ``Name`` and calls it with ``kwargs``,
    but only when the caller passes ``allow_imports=True``; otherwise the spec is
    rejected with a message saying how to opt in.

Example:
    >>> losses = load_spec("pix2pix_basic")
    >>> {name: (type(e.function).__name__, e.loss_weight, e.tags) for name, e in losses.items()}
    ... # doctest: +NORMALIZE_WHITESPACE
    {'G_GAN': ('BCEWithLogitsLoss', 1.0, ['G']), 'G_L1': ('L1Loss', 100.0, ['G']),
     'D_real': ('BCEWithLogitsLoss', 1.0, ['D']), 'D_fake': ('BCEWithLogitsLoss', 1.0, ['D'])}
    >>> dump_spec(losses)["losses"]["G_L1"]
    {'loss': 'L1Loss', 'kwargs': {}, 'weight': 100.0, 'tags': ['G']}
"""

from __future__ import annotations

import importlib
import inspect
import math
import os
import re
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import orjson
import torch
from pydantic import ValidationError
from torch import Tensor, nn

from nectarloss.losses import LossEntry, find_loss_entry, get_loss_entry
from nectarloss.modifiers import Modifier, NoiseSchedule
from nectarloss.records import LMLoss
from nectarloss.schedules import Schedule
from nectarloss.specs.models import (
    MODIFIER_SPECS,
    LossSpec,
    NoiseScheduleSpec,
    ScheduleSpec,
    SpecFile,
    _ModifierSpecBase,
    _show,
    did_you_mean,
)

__all__ = [
    "MAX_EXTENDS_DEPTH",
    "SHIPPED_DIR",
    "SpecError",
    "available_specs",
    "build_noise_schedule",
    "dump_noise_schedule",
    "dump_spec",
    "load_spec",
    "loads_spec",
    "spec_json_schema",
    "validate_spec_file",
]

#: Where the shipped JSON specs live (installed with the package).
SHIPPED_DIR = Path(__file__).resolve().parent / "json"
#: Longest ``extends`` chain accepted (the file itself included).
MAX_EXTENDS_DEPTH = 32
#: Constructor keywords given as JSON lists that torch losses expect as tensors.
TENSOR_KWARGS = frozenset({"weight", "pos_weight"})

_MAX_PROBLEMS = 20
_PLAIN_KEY = re.compile(r"^[A-Za-z_$][\w$-]*$")
_BACKTICK = re.compile(r"`(\w+)")
_KEYWORD_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)

#: Noise-schedule configs of the schedules this module built, for :func:`dump_spec`.
_NOISE_CONFIGS: weakref.WeakKeyDictionary[NoiseSchedule, dict[str, Any]] = (
    weakref.WeakKeyDictionary()
)

Loc = tuple[str | int, ...]


# ----------------------------------------------------------------------------- errors
class SpecError(ValueError):
    r"""A spec file (or dict) is malformed; the message says where and what was expected.

    The message reads ``"<file>: <json path> expected <what>, got <value>."``, or lists
    each problem on its own line when there are several.

    Args:
        source: The file (or ``"<dict>"``, ``"<string>"``, ``"dump_spec"``).
        problems: ``(json_path, detail)`` pairs; ``json_path`` may be ``""`` for the
            whole document.

    Attributes:
        source: As given.
        problems: As given, a list.
        path: The JSON path of the first problem.

    Example:
        >>> str(SpecError("a.json", [("losses.G_L1.weight", "expected a number, got \"x\"")]))
        'a.json: losses.G_L1.weight expected a number, got "x".'
    """

    def __init__(self, source: str, problems: Sequence[tuple[str, str]]) -> None:
        self.source = source
        self.problems = [(str(p), str(d)) for p, d in problems]
        super().__init__(_render(source, self.problems))

    @property
    def path(self) -> str:
        """The JSON path of the first problem (``""`` for the whole document)."""
        return self.problems[0][0] if self.problems else ""

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.source, self.problems))


def _render(source: str, problems: list[tuple[str, str]]) -> str:
    lines = []
    for path, detail in problems[:_MAX_PROBLEMS]:
        text = f"{path} {detail}" if path else detail
        lines.append(text if text.endswith((".", "?", "!")) else text + ".")
    if not lines:
        return f"{source}: invalid spec."
    if len(lines) == 1:
        return f"{source}: {lines[0]}"
    more = len(problems) - len(lines)
    tail = f"\n  ... and {more} more" if more > 0 else ""
    body = "\n".join(f"  - {line}" for line in lines)
    return f"{source}: {len(problems)} problems:\n{body}{tail}"


def json_path(loc: Sequence[str | int]) -> str:
    """Render a location as a JSON path: ``losses.G_L1.modifiers[0].threshold``.

    Example:
        >>> json_path(("losses", "G L1", "modifiers", 0, "threshold"))
        'losses["G L1"].modifiers[0].threshold'
    """
    out = ""
    for item in loc:
        if isinstance(item, int):
            out += f"[{item}]"
        elif _PLAIN_KEY.match(item):
            out += f".{item}" if out else item
        else:
            out += "[" + orjson.dumps(item).decode() + "]"
    return out


class _Problem(Exception):
    """Internal: one problem at a location, turned into a :class:`SpecError` by the caller."""

    def __init__(self, loc: Loc, detail: str) -> None:
        super().__init__(detail)
        self.loc = loc
        self.detail = detail


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
    return None


def _clean_loc(raw_loc: Loc) -> Loc:
    """Drop the discriminator tags pydantic puts after a modifier index."""
    out: list[str | int] = []
    for i, item in enumerate(raw_loc):
        after_index = i >= 2 and isinstance(raw_loc[i - 1], int) and raw_loc[i - 2] == "modifiers"
        if after_index and isinstance(item, str) and item in MODIFIER_SPECS:
            continue
        out.append(item)
    return tuple(out)


def _describe(error: Mapping[str, Any]) -> tuple[str, str]:
    """Turn one pydantic error into ``(json_path, detail)``."""
    raw_loc: Loc = tuple(error["loc"])
    loc = _clean_loc(raw_loc)
    kind = error["type"]
    ctx = error.get("ctx") or {}
    got = _show(error.get("input"))
    names = list(MODIFIER_SPECS)
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
        shown = repr(tag) if isinstance(tag, str) else _show(tag)
        hint = did_you_mean(tag, names) if isinstance(tag, str) else ""
        return json_path((*loc, "name")), (
            f"expected a modifier name, one of {', '.join(names)}, got {shown}{hint}"
        )
    if kind == "union_tag_not_found":
        return json_path((*loc, "name")), (
            f"expected a modifier name, one of {', '.join(names)}, got nothing"
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


def _raise_validation(source: str, exc: ValidationError) -> NoReturn:
    problems: list[tuple[str, str]] = []
    for error in exc.errors(include_url=False):
        item = _describe(error)
        if item not in problems:
            problems.append(item)
    raise SpecError(source, problems) from None


# ----------------------------------------------------------------------------- reading
@dataclass
class _Doc:
    """One validated document of an ``extends`` chain."""

    display: str
    key: str | None
    base_dir: Path
    spec: SpecFile


def available_specs() -> list[str]:
    """Names of the shipped JSON specs, sorted (``load_spec`` accepts each).

    Example:
        >>> "pix2pix_basic" in available_specs()
        True
    """
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.json"))


def _looks_like_path(value: str) -> bool:
    return value.endswith(".json") or "/" in value or "\\" in value or value.startswith(".")


def _parse_bytes(data: bytes | str, display: str) -> object:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise SpecError(
            display,
            [("", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")],
        ) from None


def _validate(raw: object, display: str, allow_imports: bool) -> SpecFile:
    if not isinstance(raw, Mapping):
        raise SpecError(
            display, [("", f'expected a JSON object with a "losses" key, got {_show(raw)}')]
        )
    try:
        return SpecFile.model_validate(raw, context={"allow_imports": allow_imports})
    except ValidationError as exc:
        _raise_validation(display, exc)


def _read_file(path: Path, display: str, allow_imports: bool) -> SpecFile:
    try:
        data = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SpecError(display, [("", f"expected a readable spec file, got {reason}")]) from None
    return _validate(_parse_bytes(data, display), display, allow_imports)


def _shipped(name: str) -> Path | None:
    path = SHIPPED_DIR / f"{name}.json"
    return path if path.is_file() else None


def _file_doc(path: Path, display: str, allow_imports: bool) -> _Doc:
    return _Doc(
        display=display,
        key=str(path.resolve()),
        base_dir=path.resolve().parent,
        spec=_read_file(path, display, allow_imports),
    )


def _resolve_extends(doc: _Doc) -> tuple[Path, str]:
    """The file ``doc`` extends and how to display it."""
    target = doc.spec.extends
    if target is None:  # pragma: no cover - callers check
        raise RuntimeError("nectarloss.specs: no extends to resolve.")
    if not _looks_like_path(target):
        shipped = _shipped(target)
        if shipped is None:
            names = available_specs()
            raise SpecError(
                doc.display,
                [
                    (
                        "extends",
                        f"expected a shipped spec name, one of {', '.join(names)}, or a path "
                        f"ending in .json, got {target!r}{did_you_mean(target, names)}",
                    )
                ],
            )
        return shipped, f"{target}.json (shipped)"
    path = doc.base_dir / target
    display = os.path.normpath(str(path))
    if not path.is_file():
        what = "a directory" if path.is_dir() else "no such file"
        raise SpecError(
            doc.display,
            [("extends", f"expected an existing spec file, got {target!r} ({display}: {what})")],
        )
    return path, display


def _chain(first: _Doc, allow_imports: bool) -> list[_Doc]:
    """``first`` and every spec it extends, child first."""
    chain = [first]
    while chain[-1].spec.extends is not None:
        doc = chain[-1]
        path, display = _resolve_extends(doc)
        key = str(path.resolve())
        keys = [d.key for d in chain]
        if key in keys:
            cycle = [Path(k).name for k in keys[keys.index(key) :] if k is not None]
            cycle.append(Path(key).name)
            raise SpecError(doc.display, [("extends", f"cycle: {' -> '.join(cycle)}")])
        if len(chain) >= MAX_EXTENDS_DEPTH:
            raise SpecError(
                doc.display,
                [("extends", f"expected a chain of at most {MAX_EXTENDS_DEPTH} files, got more")],
            )
        chain.append(_file_doc(path, display, allow_imports))
    return chain


def _merge(chain: list[_Doc]) -> dict[str, tuple[LossSpec, _Doc]]:
    merged: dict[str, tuple[LossSpec, _Doc]] = {}
    for doc in reversed(chain):
        problems = []
        for name, entry in doc.spec.losses.items():
            if entry is not None:
                merged[name] = (entry, doc)
            elif name in merged:
                del merged[name]
            else:
                problems.append(
                    (
                        json_path(("losses", name)),
                        "expected a loss entry (null only removes an inherited entry, and no "
                        f"extended spec defines {name!r}), got null",
                    )
                )
        if problems:
            raise SpecError(doc.display, problems)
    if not merged:
        raise SpecError(
            chain[0].display,
            [("losses", "expected at least one loss entry (after extends and nulls), got none")],
        )
    return merged


def _load(first: _Doc, allow_imports: bool) -> dict[str, LMLoss]:
    merged = _merge(_chain(first, allow_imports))
    out: dict[str, LMLoss] = {}
    failures: dict[str, list[tuple[str, str]]] = {}
    for name, (entry, doc) in merged.items():
        try:
            out[name] = _build_entry(name, entry)
        except _Problem as problem:
            failures.setdefault(doc.display, []).append((json_path(problem.loc), problem.detail))
    if failures:
        source, problems = next(iter(failures.items()))
        raise SpecError(source, problems)
    return out


# ----------------------------------------------------------------------------- public
def load_spec(
    source: str | os.PathLike[str] | Mapping[str, Any], *, allow_imports: bool = False
) -> dict[str, LMLoss]:
    """Load a JSON spec into fresh :class:`~nectarloss.LMLoss` entries.

    Args:
        source: A shipped spec name (``"pix2pix_basic"``, see :func:`available_specs`),
            a path to a ``.json`` file, or an already parsed spec ``dict`` (its
            relative ``extends`` paths resolve against the working directory).
        allow_imports: Let ``"loss": "package.module:Name"`` import Python code.

    Returns:
        The losses by name, in file order (inherited entries first), each with new
        modules, schedules and modifiers. Pass them to the manager with
        ``lm.init_from_spec(load_spec, source)``.

    Raises:
        SpecError: For any mistake in the spec or a file it extends.
        TypeError: If ``source`` is not a str, path or mapping.

    Example:
        >>> sorted(load_spec("pix2pix_extended"))
        ['D_fake', 'D_real', 'G_GAN', 'G_L1', 'G_L2', 'G_LAP', 'G_SOBEL']
    """
    if isinstance(source, Mapping):
        doc = _Doc("<dict>", None, Path.cwd(), _validate(source, "<dict>", allow_imports))
        return _load(doc, allow_imports)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            "load_spec: `source` expected a spec name, a path or a dict, "
            f"got {type(source).__name__}."
        )
    text = os.fspath(source)
    if isinstance(source, str) and not _looks_like_path(text):
        shipped = _shipped(text)
        if shipped is not None:
            return _load(_file_doc(shipped, f"{text}.json (shipped)", allow_imports), allow_imports)
        if not Path(text).is_file():
            names = available_specs()
            raise SpecError(
                text,
                [
                    (
                        "",
                        f"expected a shipped spec name, one of {', '.join(names)}, or a path "
                        f"to a .json file, got {text!r}{did_you_mean(text, names)}",
                    )
                ],
            )
    path = Path(text)
    if not path.is_file():
        what = "a directory" if path.is_dir() else "no such file"
        raise SpecError(text, [("", f"expected an existing spec file, got {what}")])
    return _load(_file_doc(path, text, allow_imports), allow_imports)


def loads_spec(
    data: str | bytes,
    *,
    source: str = "<string>",
    base_dir: str | os.PathLike[str] | None = None,
    allow_imports: bool = False,
) -> dict[str, LMLoss]:
    """Load a spec from JSON text (see :func:`load_spec`).

    Args:
        data: The JSON document.
        source: Name used in error messages.
        base_dir: Directory relative ``extends`` paths resolve against (default: the
            working directory).
        allow_imports: Let ``"loss": "package.module:Name"`` import Python code.

    Returns:
        The losses by name.

    Raises:
        SpecError: For any mistake in the spec or a file it extends.

    Example:
        >>> loads_spec('{"losses": {"mse": {"loss": "L2"}}}')["mse"].function
        MSELoss()
    """
    if not isinstance(data, (str, bytes)):
        raise TypeError(f"loads_spec: `data` expected str or bytes, got {type(data).__name__}.")
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    doc = _Doc(source, None, base, _validate(_parse_bytes(data, source), source, allow_imports))
    return _load(doc, allow_imports)


def validate_spec_file(path: str | os.PathLike[str], *, allow_imports: bool = False) -> None:
    """Check a spec file completely: JSON, keys, names, extends, and that it builds.

    The losses are built (cheap for the catalog losses) so that constructor arguments
    are checked too, then discarded.

    Args:
        path: The file, or a shipped spec name.
        allow_imports: Allow ``"package.module:Name"`` losses (they are imported).

    Raises:
        SpecError: Describing the first file with problems and each problem in it.

    Example:
        >>> validate_spec_file("pix2pix_basic")
    """
    load_spec(path, allow_imports=allow_imports)


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


# ----------------------------------------------------------------------------- building
def _signature(factory: Callable[..., Any]) -> dict[str, inspect.Parameter] | None:
    try:
        return dict(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        return None


def _accepts(params: dict[str, inspect.Parameter] | None, name: str) -> bool:
    if params is None:
        return True
    if name in params:
        return params[name].kind in _KEYWORD_KINDS
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


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
    return None if ok else f"expected {what} (the default is {default!r}), got {_show(value)}"


def _import_factory(target: str, loc: Loc) -> Callable[..., Any]:
    module_name, _, attr_path = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr_path.split("."):
            obj = getattr(obj, part)
    except Exception as exc:  # noqa: BLE001 - any import failure is the spec's problem
        raise _Problem(
            loc, f"expected an importable object, got {target!r} ({type(exc).__name__}: {exc})"
        ) from None
    if not callable(obj):
        raise _Problem(loc, f"expected a callable loss class or factory, got {target!r}")
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
            raise _Problem((*base, "kwargs", key), why)
        if key in TENSOR_KWARGS and isinstance(value, list):
            try:
                kwargs[key] = torch.tensor(value, dtype=torch.float32)
            except Exception:  # noqa: BLE001 - torch raises several types here
                raise _Problem(
                    (*base, "kwargs", key),
                    f"expected a (nested) list of numbers to make a tensor, got {_show(value)}",
                ) from None
    if spec.modifiers:
        reduction = kwargs.get("reduction")
        if reduction is not None and reduction != "none":
            raise _Problem(
                (*base, "kwargs", "reduction"),
                "expected 'none' or no reduction (modifiers need the per-sample loss and "
                f"set reduction='none' themselves), got {_show(reduction)}",
            )
        if _accepts(params, "reduction"):
            kwargs["reduction"] = "none"
    return kwargs


def _catalog_entry(name: str) -> LossEntry | None:
    """The catalog entry of ``name``, or ``None`` (an import path, validated already)."""
    try:
        return get_loss_entry(name)
    except (TypeError, ValueError):
        return None


def _build_module(spec: LossSpec, base: Loc) -> nn.Module | Callable[..., Any]:
    name = spec.loss
    entry = _catalog_entry(name)
    if entry is None:
        factory = _import_factory(name, (*base, "loss"))
        display = name
    else:
        factory, display = entry.factory, entry.name
    kwargs = _prepare_kwargs(spec, _signature(factory), base)
    try:
        if entry is None:
            module: nn.Module | Callable[..., Any] = factory(**kwargs)
        else:
            module = entry.build(**kwargs)
    except Exception as exc:  # noqa: BLE001 - constructors raise anything
        raise _Problem(
            (*base, "kwargs"), f"expected keyword arguments that {display} accepts; {exc}"
        ) from None
    if not callable(module):
        raise _Problem((*base, "loss"), f"expected {display} to build a callable loss")
    return module


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    if not errors:  # pragma: no cover - pydantic always has one
        return str(exc)
    ctx = errors[0].get("ctx") or {}
    return str(ctx.get("error", errors[0].get("msg")))


def _build_schedule(spec: ScheduleSpec, loc: Loc) -> Schedule:
    try:
        return Schedule(**spec.model_dump(exclude_none=True))
    except ValidationError as exc:
        raise _Problem(loc, _first_error(exc)) from None


def _field_loc(loc: Loc, message: str, fields: Sequence[str]) -> Loc:
    """Narrow ``loc`` to the field a constructor message names in backticks, if any."""
    match = _BACKTICK.search(message)
    if match and match.group(1) in fields:
        return (*loc, match.group(1))
    return loc


def build_noise_schedule(spec: NoiseScheduleSpec | Mapping[str, Any]) -> NoiseSchedule:
    """Build a :class:`~nectarloss.modifiers.NoiseSchedule` from its spec.

    The config is remembered so that :func:`dump_spec` writes it back as given.

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
            _raise_validation("noise_schedule", exc)
    try:
        return _build_noise(spec, ())
    except _Problem as problem:
        raise SpecError("noise_schedule", [(json_path(problem.loc), problem.detail)]) from None


def _build_noise(spec: NoiseScheduleSpec, loc: Loc) -> NoiseSchedule:
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
        raise _Problem(where, f"expected a valid {kind!r} noise schedule; {exc}") from None
    _NOISE_CONFIGS[schedule] = spec.model_dump(exclude_none=True)
    return schedule


def _build_modifier(spec: _ModifierSpecBase, loc: Loc) -> Modifier:
    kwargs = spec.modifier_kwargs()
    if spec.uses_noise_schedule:
        noise: NoiseScheduleSpec = getattr(spec, "noise_schedule")  # noqa: B009
        kwargs["noise_schedule"] = _build_noise(noise, (*loc, "noise_schedule"))
    cls = spec.modifier_class
    try:
        return cls(**kwargs)
    except Exception as exc:  # noqa: BLE001 - constructors raise anything
        where = _field_loc(loc, str(exc), list(type(spec).model_fields))
        raise _Problem(where, f"expected valid {cls.__name__} options; {exc}") from None


def _build_entry(name: str, spec: LossSpec) -> LMLoss:
    base: Loc = ("losses", name)
    module = _build_module(spec, base)
    schedule = _build_schedule(spec.schedule, (*base, "schedule")) if spec.schedule else None
    modifiers = [_build_modifier(m, (*base, "modifiers", i)) for i, m in enumerate(spec.modifiers)]
    return LMLoss(
        name=name,
        function=module,
        loss_weight=spec.weight,
        schedule=schedule,
        tags=list(spec.tags),
        modifiers=modifiers,
    )


# ----------------------------------------------------------------------------- dumping
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
        raise _Problem(
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
    params = _signature(factory) or {}
    out: dict[str, Any] = {}
    for pname, param in params.items():
        if param.kind not in _KEYWORD_KINDS:
            continue
        try:
            value = _plain(getattr(function, pname))
        except AttributeError:
            if param.default is inspect.Parameter.empty:
                raise _Problem(
                    (*loc, "kwargs", pname),
                    f"expected an attribute {pname!r} to recover the required argument, got none",
                ) from None
            continue
        if pname == "reduction" and has_modifiers and value == "none":
            continue
        if param.default is not inspect.Parameter.empty and _equal(value, param.default):
            continue
        if not _jsonable(value):
            raise _Problem(
                (*loc, "kwargs", pname),
                f"expected a JSON value to write, got {type(value).__name__}",
            )
        out[pname] = value
    return out


def dump_noise_schedule(schedule: NoiseSchedule) -> dict[str, Any]:
    """The spec form of a noise schedule (the inverse of :func:`build_noise_schedule`).

    A schedule built from a spec is written as it was given. Any other schedule is
    matched against the default ``scaled_linear``, ``linear`` and ``flow_matching``
    tables of its length, and otherwise written as its SNR table (``kind: "snr"``).

    Example:
        >>> dump_noise_schedule(NoiseSchedule.scaled_linear(num_steps=50))
        {'kind': 'scaled_linear', 'num_steps': 50}
    """
    table = schedule.snr_table.detach().cpu()
    config = _NOISE_CONFIGS.get(schedule)
    if config is not None:
        rebuilt = _build_noise(NoiseScheduleSpec.model_validate(config), ())
        if torch.equal(rebuilt.snr_table, table):
            return dict(config)
    for kind in ("scaled_linear", "linear", "flow_matching"):
        candidate = {"kind": kind, "num_steps": schedule.num_steps}
        rebuilt = _build_noise(NoiseScheduleSpec.model_validate(candidate), ())
        if torch.equal(rebuilt.snr_table, table):
            return candidate
    return {"kind": "snr", "values": table.double().tolist()}


def _dump_modifier(modifier: object, loc: Loc) -> dict[str, Any]:
    hook = getattr(modifier, "spec_config", None)
    if callable(hook):
        custom = hook()
        if isinstance(custom, dict):
            return {str(k): v for k, v in custom.items()}
    name = type(modifier).__name__
    spec_cls = MODIFIER_SPECS.get(name)
    if spec_cls is None or type(modifier) is not spec_cls.modifier_class:
        raise _Problem(
            loc,
            f"expected a modifier from nectarloss.modifiers ({', '.join(MODIFIER_SPECS)}) or "
            f"one with a spec_config() method, got {name}",
        )
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
            raise _Problem(
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
        except _Problem as problem:
            problems.append((json_path(problem.loc), problem.detail))
    if problems:
        raise SpecError("dump_spec", problems)
    result["losses"] = out
    return result

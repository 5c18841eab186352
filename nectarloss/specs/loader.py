"""Load JSON loss specs: read the files, follow ``extends``, merge, then build.

A spec file is read with orjson, checked against the pydantic models in
:mod:`nectarloss.specs.models` (:mod:`nectarloss.specs.validate`), merged with the spec
it ``extends`` and built into ``dict[str, LMLoss]`` (:mod:`nectarloss.specs.build`),
ready for ``LossManager.init_from_spec``. Every mistake raises one
:class:`~nectarloss.specs.SpecError` naming the file, the JSON path and what was
expected.

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
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from nectarloss.balancing import Balancer
from nectarloss.records import LMLoss
from nectarloss.specs.balancer_models import BalancerSpecBase
from nectarloss.specs.build import build_entry
from nectarloss.specs.errors import Problem, SpecError, did_you_mean, json_path
from nectarloss.specs.loss_models import LossSpec, SpecFile
from nectarloss.specs.validate import validate_document

__all__ = [
    "MAX_EXTENDS_DEPTH",
    "SHIPPED_DIR",
    "available_specs",
    "load_spec",
    "loads_spec",
    "validate_spec_file",
]

#: Where the shipped JSON specs live (installed with the package).
SHIPPED_DIR = Path(__file__).resolve().parent / "json"
#: Longest ``extends`` chain accepted (the file itself included).
MAX_EXTENDS_DEPTH = 32


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


def _read_file(path: Path, display: str, allow_imports: bool) -> SpecFile:
    try:
        data = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SpecError(display, [("", f"expected a readable spec file, got {reason}")]) from None
    return validate_document(_parse_bytes(data, display), display, allow_imports)


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
    groups: dict[str, tuple[BalancerSpecBase, Balancer]] = {}  # balancers shared by name
    for name, (entry, doc) in merged.items():
        try:
            out[name] = build_entry(name, entry, groups)
        except Problem as problem:
            failures.setdefault(doc.display, []).append((json_path(problem.loc), problem.detail))
    for name, (entry, doc) in merged.items():  # what a balancer reads must be in the spec
        for ref in [] if entry.balancer is None else entry.balancer.references():
            if ref not in merged or ref == name:
                known = [n for n in merged if n != name]
                failures.setdefault(doc.display, []).append(
                    (
                        json_path(("losses", name, "balancer", "reference")),
                        f"expected another loss of the spec, one of {', '.join(known)}, got "
                        f"{ref!r}{did_you_mean(ref, known)}",
                    )
                )
    if failures:
        source, problems = next(iter(failures.items()))
        raise SpecError(source, problems)
    return out


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
        doc = _Doc("<dict>", None, Path.cwd(), validate_document(source, "<dict>", allow_imports))
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
    doc = _Doc(
        source, None, base, validate_document(_parse_bytes(data, source), source, allow_imports)
    )
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

"""validation.py: one rule per check, shared by the manager, the catalog and the specs."""

from __future__ import annotations

import ast
import math
from pathlib import Path
from typing import Any

import pytest
from torch import nn

import nectarloss
from nectarloss import LossManager, UnknownLossError
from nectarloss.losses import get_loss_entry, register_loss, unregister_loss
from nectarloss.specs import SpecError, load_spec
from nectarloss.validation import (
    check_bool,
    check_float,
    check_name,
    check_positive,
    check_weight,
    closest,
    loss_name_problem,
)

PACKAGE = Path(nectarloss.__file__).resolve().parent

#: Names every owner rejects: empty, padded, path separators, and characters that do not
#: print (controls, format characters, and separators other than the plain space).
BAD_NAMES = [
    "",
    " a",
    "a ",
    "a/b",
    "a\\b",
    "a\nb",
    "a\x00",
    "tab\there",
    "G\u00a0L1",  # no-break space
    "G\u2028L1",  # line separator
    "G\u200bL1",  # zero-width space (a format character)
]
GOOD_NAMES = ["G_GAN", "D real", "G-L1.v2", "été", "損失"]


# ------------------------------------------------------------------------------ names
@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_name_is_rejected_by_every_owner(tmp_path: Path, name: str) -> None:
    assert loss_name_problem(name) is not None
    with pytest.raises(ValueError, match="LossManager: `loss_name` expected a non-empty name"):
        LossManager(tmp_path).register_loss_fn(name, nn.L1Loss())
    with pytest.raises(ValueError, match="register_loss: `name` expected a non-empty name"):
        register_loss(name)
    with pytest.raises(SpecError, match="expected loss names"):
        load_spec({"losses": {name: {"loss": "L1Loss"}}})


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_good_name_is_accepted_by_every_owner(tmp_path: Path, name: str) -> None:
    assert loss_name_problem(name) is None
    assert check_name(name) == name
    lm = LossManager(tmp_path)
    lm.register_loss_fn(name, nn.L1Loss())
    assert name in lm.get_registered_losses()
    register_loss(name)(nn.L1Loss)
    try:
        assert get_loss_entry(name).factory is nn.L1Loss
    finally:
        unregister_loss(name)
    assert list(load_spec({"losses": {name: {"loss": "L1Loss"}}})) == [name]


def test_name_must_be_a_str() -> None:
    with pytest.raises(TypeError, match="register_loss: `name` expected a str, got int"):
        check_name(3, "register_loss", "name")


# ------------------------------------------------------------------------------ numbers
@pytest.mark.parametrize(
    ("kwargs", "value", "expected"),
    [
        ({"low": 0.0}, 0, 0.0),
        ({"low": 0.0, "high": 1.0, "open_low": True}, 1, 1.0),
        ({"finite": False, "low": 0.0}, math.inf, math.inf),
        ({}, -2.5, -2.5),
    ],
)
def test_check_float_accepts(kwargs: dict[str, Any], value: object, expected: float) -> None:
    assert check_float("Owner", "x", value, "a number", **kwargs) == expected


@pytest.mark.parametrize(
    ("kwargs", "value", "error", "message"),
    [
        ({"low": 0.0, "open_low": True}, 0.0, ValueError, "Owner: `x` expected W, got 0.0."),
        ({"high": 1.0, "open_high": True}, 1.0, ValueError, "Owner: `x` expected W, got 1.0."),
        ({}, math.nan, ValueError, "Owner: `x` expected W, got nan."),
        ({}, math.inf, ValueError, "Owner: `x` expected W, got inf."),
        ({"finite": False, "low": 0.0}, math.nan, ValueError, "Owner: `x` expected W, got nan."),
        ({}, 10**400, ValueError, "Owner: `x` expected W, got inf."),
        ({}, True, TypeError, "Owner: `x` expected W, got bool True."),
        ({"type_what": "T"}, "1", TypeError, "Owner: `x` expected T, got str '1'."),
    ],
)
def test_check_float_rejects(
    kwargs: dict[str, Any], value: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        check_float("Owner", "x", value, "W", **kwargs)
    assert str(info.value) == message


def test_short_forms() -> None:
    assert check_positive("P2", "k", 2) == 2.0
    assert check_weight("G_L1", 0) == 0.0
    with pytest.raises(ValueError, match=r"G_L1: `loss_weight` expected a finite float >= 0"):
        check_weight("G_L1", -1.0)
    with pytest.raises(TypeError, match=r"G_L1: `loss_weight` expected a float, got list"):
        check_weight("G_L1", [1.0])
    assert check_bool("Sangoi", "upcast", False) is False
    with pytest.raises(TypeError, match=r"Sangoi: `upcast` expected a bool, got int 1\."):
        check_bool("Sangoi", "upcast", 1)


def test_closest_tries_case_slips() -> None:
    assert closest("bcewithlogitsloss", ["BCEWithLogitsLoss", "L1Loss"]) == ["BCEWithLogitsLoss"]
    assert closest("zzzz", ["L1Loss"]) == []


# ------------------------------------------------------------------------------ errors
def test_unknown_loss_is_one_error_type(tmp_path: Path) -> None:
    with pytest.raises(UnknownLossError) as from_catalog:
        get_loss_entry("L1Los")
    with pytest.raises(UnknownLossError) as from_manager:
        LossManager(tmp_path).compute_loss("L1Los")
    for info in (from_catalog, from_manager):
        assert isinstance(info.value, KeyError)
        assert isinstance(info.value, ValueError)
    assert str(from_catalog.value).startswith("unknown loss 'L1Los'; did you mean 'L1Loss'")


def test_every_exception_class_lives_in_errors() -> None:
    defined = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "errors.py" and path.parent == PACKAGE:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = {ast.unparse(b) for b in node.bases}
                if any(b.endswith(("Error", "Exception", "Warning")) for b in bases):
                    defined.append(f"{path.relative_to(PACKAGE)}:{node.name}")
    assert defined == []


def test_old_import_paths_still_work() -> None:
    from nectarloss import errors
    from nectarloss.cli import CliError
    from nectarloss.log import LogFormatError
    from nectarloss.specs.errors import Problem
    from nectarloss.specs.errors import SpecError as SpecErrorFromSpecs

    assert LogFormatError is errors.LogFormatError
    assert SpecErrorFromSpecs is SpecError is errors.SpecError
    assert Problem is errors.Problem
    assert CliError is errors.CliError


def test_validation_imports_no_other_nectarloss_module() -> None:
    tree = ast.parse((PACKAGE / "validation.py").read_text(encoding="utf-8"))
    imported = [
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nectarloss")
    ]
    assert imported == []

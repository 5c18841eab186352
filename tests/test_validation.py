"""validation.py: one rule per check, shared by the manager, the catalog and the specs."""

from __future__ import annotations

import ast
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import nectarloss
from nectarloss import LossManager, UnknownLossError
from nectarloss.losses import get_loss_entry, register_loss, unregister_loss
from nectarloss.specs import SpecError, load_spec
from nectarloss.validation import (
    add_note,
    check_bool,
    check_choice,
    check_count,
    check_epoch,
    check_float,
    check_inputs,
    check_name,
    check_positive,
    check_tags,
    check_tensor,
    check_weight,
    closest,
    did_you_mean,
    loss_name_problem,
    shape_of,
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


# ------------------------------------------------------------------ tensors and loss inputs
def test_shape_of() -> None:
    assert shape_of(torch.zeros(2, 3)) == (2, 3)
    assert shape_of(torch.tensor(1.0)) == ()
    assert shape_of([1.0, 2.0]) is None and shape_of(None) is None


def test_check_tensor() -> None:
    x = torch.ones(2)
    assert check_tensor("Sangoi", "mask", x) is x
    with pytest.raises(TypeError, match=r"^Sangoi: `mask` expected a Tensor, got list\.$"):
        check_tensor("Sangoi", "mask", [1.0])


def test_check_inputs_accepts_matching_tensors() -> None:
    check_inputs("G_L1", get_loss_entry("L1Loss"), (torch.ones(2, 3), torch.zeros(2, 3)))
    logits, labels = torch.randn(4, 10), torch.zeros(4, dtype=torch.long)
    check_inputs("CE", get_loss_entry("CrossEntropyLoss"), (logits, labels))  # shapes may differ


@pytest.mark.parametrize(
    ("inputs", "error", "message"),
    [
        (
            ("x", torch.ones(2)),
            TypeError,
            "G_L1: `input` expected a Tensor, got str.",
        ),
        (
            (torch.ones(2), 1.0),
            TypeError,
            "G_L1: `target` expected a Tensor, got float.",
        ),
        (
            (torch.ones(2), torch.ones(2, device="meta")),
            ValueError,
            "G_L1: `target` expected a tensor on cpu like `input`, got meta.",
        ),
        (
            (torch.ones(2, 3), torch.ones(3, 2)),
            ValueError,
            "G_L1: `target` expected shape (2, 3) like `input`, got (3, 2).",
        ),
    ],
)
def test_check_inputs_rejects(
    inputs: tuple[Any, ...], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        check_inputs("G_L1", get_loss_entry("L1Loss"), inputs)
    assert str(info.value) == message


def test_check_inputs_names_the_catalog_inputs() -> None:
    entry = get_loss_entry("MarginRankingLoss")
    with pytest.raises(TypeError, match=r"^rank: `input2` expected a Tensor, got NoneType\.$"):
        check_inputs("rank", entry, (torch.ones(3), None, torch.ones(3)))


# ------------------------------------------------------------------ choices, counts, epochs
def test_check_choice() -> None:
    assert check_choice("nonfinite", "raise", ("warn", "raise", "ignore")) == "raise"
    with pytest.raises(ValueError) as info:
        check_choice("nonfinite", "loud", ("warn", "raise", "ignore"))
    assert str(info.value) == (
        "LossManager: `nonfinite` expected 'warn', 'raise' or 'ignore', got 'loud'."
    )
    with pytest.raises(ValueError, match=r"^Owner: `x` expected 1 or 2, got 3\.$"):
        check_choice("x", 3, (1, 2), owner="Owner")


def test_check_count() -> None:
    assert check_count("LossManager", "history_buffer_size", 1, 10) == 1
    assert check_count("LossManager", "history_buffer_size", 10, 10) == 10
    with pytest.raises(TypeError, match=r"^LossManager: `n` expected an int, got float\.$"):
        check_count("LossManager", "n", 2.0, 10)
    with pytest.raises(TypeError, match=r"expected an int, got bool"):
        check_count("LossManager", "n", True, 10)
    with pytest.raises(ValueError, match=r"^LossManager: `n` expected an int >= 1, got 0\.$"):
        check_count("LossManager", "n", 0, 10)
    with pytest.raises(ValueError) as info:
        check_count("LossManager", "n", 11, 10)
    assert str(info.value) == (
        "LossManager: `n` expected at most 10 values per loss, got 11; flush more often instead."
    )


@pytest.mark.parametrize(
    ("epoch", "expected"),
    [(0, 0), (3, 3), (2.5, 2.5), (np.int64(7), 7.0), (np.float32(1.5), 1.5)],
)
def test_check_epoch_accepts(epoch: object, expected: float) -> None:
    got = check_epoch("G_L1", epoch)
    assert got == expected and type(got) in (int, float)


@pytest.mark.parametrize(
    ("epoch", "error", "message"),
    [
        (-1, ValueError, "G_L1: `epoch` expected a finite number >= 0, got -1."),
        (math.nan, ValueError, "G_L1: `epoch` expected a finite number >= 0, got nan."),
        (math.inf, ValueError, "G_L1: `epoch` expected a finite number >= 0, got inf."),
        (True, TypeError, "G_L1: `epoch` expected an int, got bool."),
        ("3", TypeError, "G_L1: `epoch` expected an int, got str."),
        (None, TypeError, "G_L1: `epoch` expected an int, got NoneType."),
    ],
)
def test_check_epoch_rejects(epoch: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        check_epoch("G_L1", epoch)
    assert str(info.value) == message


def test_check_epoch_shortens_a_huge_int_in_its_message() -> None:
    with pytest.raises(ValueError) as info:
        check_epoch("G_L1", 10**400)  # beyond float's range
    assert str(info.value) == f"G_L1: `epoch` expected a finite number >= 0, got {'1' + '0' * 39}."


# ------------------------------------------------------------------------ tags and notes
def test_check_tags() -> None:
    assert check_tags("G_L1", None) == []
    assert check_tags("G_L1", "G") == ["G"]
    assert check_tags("G_L1", ("G", "pix")) == ["G", "pix"]
    assert check_tags("G_L1", []) == []
    assert check_tags("G_L1", (t for t in ["a", "b"])) == ["a", "b"]  # any iterable, once


def test_check_tags_rejects() -> None:
    with pytest.raises(TypeError, match=r"^G_L1: `tags` expected a list of str, got int\.$"):
        check_tags("G_L1", 3)
    with pytest.raises(TypeError, match=r"^G_L1: `tags` expected a list of str, got item 1\.$"):
        check_tags("G_L1", ["G", 1])
    empty = r'^G_L1: `tags` expected non-empty tag strings, got ""\.$'
    with pytest.raises(ValueError, match=empty):
        check_tags("G_L1", ["G", ""])  # the rule the spec models apply too


def test_did_you_mean() -> None:
    assert did_you_mean("L1Los", ["L1Loss", "MSELoss"]) == " (did you mean 'L1Loss'?)"
    assert did_you_mean("zzzz", ["L1Loss"]) == ""
    assert did_you_mean("a", []) == ""
    two = did_you_mean("G_L", ["G_L1", "G_L2", "D_real"])  # best match first, both listed
    assert two in (" (did you mean 'G_L1' or 'G_L2'?)", " (did you mean 'G_L2' or 'G_L1'?)")


def test_add_note_attaches_where_python_supports_it() -> None:
    exc = ValueError("boom")
    add_note(exc, "nectarloss: raised by loss 'a'")
    if sys.version_info >= (3, 11):
        assert exc.__notes__ == ["nectarloss: raised by loss 'a'"]
    else:
        assert not hasattr(exc, "__notes__")
    assert str(exc) == "boom"  # the message itself is unchanged

"""Malformed specs: each gives one SpecError naming the file, the JSON path and the expectation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from nectarloss.specs import SpecError, load_spec, validate_spec_file


def L(entry: Any, name: str = "G_L1") -> dict[str, Any]:  # noqa: N802
    """A spec with one loss entry."""
    return {"losses": {name: entry}}


def M(modifier: Any) -> dict[str, Any]:  # noqa: N802
    """A spec with one L1 loss carrying one modifier."""
    return L({"loss": "L1Loss", "modifiers": [modifier]})


SCALED = {"kind": "scaled_linear"}

#: (spec, expected JSON path, expected message fragments after the path).
CASES: list[tuple[str, Any, str, tuple[str, ...]]] = [
    # -- wrong types
    (
        "weight_string",
        L({"loss": "L1Loss", "weight": "1"}),
        "losses.G_L1.weight",
        ('expected a number, got "1".',),
    ),
    (
        "weight_bool",
        L({"loss": "L1Loss", "weight": True}),
        "losses.G_L1.weight",
        ("expected a number, got true.",),
    ),
    (
        "tags_string",
        L({"loss": "L1Loss", "tags": "G"}),
        "losses.G_L1.tags",
        ('expected a list, got "G".',),
    ),
    (
        "tag_number",
        L({"loss": "L1Loss", "tags": ["G", 3]}),
        "losses.G_L1.tags[1]",
        ("expected a string, got 3.",),
    ),
    ("loss_number", L({"loss": 5}), "losses.G_L1.loss", ("expected a string, got 5.",)),
    ("entry_list", L([1]), "losses.G_L1", ("expected an object, got a list of 1.",)),
    ("losses_list", {"losses": []}, "losses", ("expected an object, got a list of 0.",)),
    (
        "kwargs_list",
        L({"loss": "L1Loss", "kwargs": []}),
        "losses.G_L1.kwargs",
        ("expected an object, got a list of 0.",),
    ),
    (
        "epoch_float",
        L({"loss": "L1Loss", "schedule": {"end_epoch": 10.5}}),
        "losses.G_L1.schedule.end_epoch",
        ("expected an integer, got 10.5.",),
    ),
    ("extends_number", {"extends": 3, "losses": {}}, "extends", ("expected a string, got 3.",)),
    # -- unknown keys
    (
        "unknown_top_key",
        {"loss": {}},
        "",
        (
            "expected only the keys $schema, description, extends, losses, got unknown key "
            "'loss' (did you mean 'losses'?).",
        ),
    ),
    (
        "unknown_entry_key",
        L({"loss": "L1Loss", "wieght": 2.0}),
        "losses.G_L1",
        (
            "expected only the keys loss, kwargs, weight, schedule, tags, modifiers, balancer, "
            "got unknown key 'wieght' (did you mean 'weight'?).",
        ),
    ),
    (
        "unknown_schedule_key",
        L({"loss": "L1Loss", "schedule": {"end": 5}}),
        "losses.G_L1.schedule",
        ("got unknown key 'end'", "start_epoch, end_epoch"),
    ),
    (
        "unknown_modifier_key",
        M({"name": "SuperLoss", "tau": 1.0}),
        "losses.G_L1.modifiers[0]",
        (
            "expected only the keys name, threshold, regularization, momentum",
            "got unknown key 'tau'.",
        ),
    ),
    (
        "missing_loss",
        L({"weight": 1.0}),
        "losses.G_L1.loss",
        ("expected a value (the key is required), got nothing.",),
    ),
    # -- bad values
    (
        "negative_weight",
        L({"loss": "L1Loss", "weight": -1.0}),
        "losses.G_L1.weight",
        ("expected a number >= 0.0, got -1.0.",),
    ),
    (
        "negative_epoch",
        L({"loss": "L1Loss", "schedule": {"start_epoch": -1}}),
        "losses.G_L1.schedule.start_epoch",
        ("expected a number >= 0, got -1.",),
    ),
    (
        "schedule_bounds",
        L({"loss": "L1Loss", "schedule": {"start_epoch": 100, "end_epoch": 50}}),
        "losses.G_L1.schedule.end_epoch",
        ("expected an int > start_epoch (100) for a 'linear' schedule, got 50.",),
    ),
    (
        "exponential_zero",
        L(
            {
                "loss": "L1Loss",
                "schedule": {"schedule": "exponential", "end_epoch": 5, "target_value": 0.0},
            }
        ),
        "losses.G_L1.schedule.target_value",
        ("expected a float > 0 for an 'exponential' schedule, got 0.0.",),
    ),
    (
        "unknown_curve",
        L({"loss": "L1Loss", "schedule": {"schedule": "cosin"}}),
        "losses.G_L1.schedule.schedule",
        ("got 'cosin' (did you mean 'cosine'?).",),
    ),
    (
        "milestones_order",
        L({"loss": "L1Loss", "schedule": {"schedule": "step", "milestones": [5, 2]}}),
        "losses.G_L1.schedule.milestones",
        ("expected non-negative increasing ints, got [5, 2].",),
    ),
    (
        "unit",
        L({"loss": "L1Loss", "schedule": {"unit": "batch"}}),
        "losses.G_L1.schedule.unit",
        ("expected one of 'epoch' or 'step', got \"batch\".",),
    ),
    (
        "bad_loss_name_key",
        {"losses": {"G/L1": {"loss": "L1Loss"}}},
        "losses",
        ("expected loss names free of path separators and control characters, got 'G/L1'.",),
    ),
    (
        "empty_tag",
        L({"loss": "L1Loss", "tags": [""]}),
        "losses.G_L1.tags",
        ('expected non-empty tag strings, got "".',),
    ),
    (
        "no_losses",
        {"description": "nothing"},
        "losses",
        ("expected at least one loss entry (after extends and nulls), got none.",),
    ),
    (
        "null_without_parent",
        L(None),
        "losses.G_L1",
        ("null only removes an inherited entry", "got null."),
    ),
    # -- unknown names
    (
        "unknown_loss",
        L({"loss": "L1Los"}),
        "losses.G_L1.loss",
        ("expected a loss name from the catalog, got 'L1Los' (did you mean 'L1Loss'",),
    ),
    (
        "unknown_loss_case",
        L({"loss": "bcewithlogitsloss"}),
        "losses.G_L1.loss",
        ("did you mean 'BCEWithLogitsLoss'",),
    ),
    (
        "unknown_modifier",
        M({"name": "SuperLos"}),
        "losses.G_L1.modifiers[0].name",
        (
            "expected a modifier name, one of SuperLoss, MinSNR, DebiasedEstimation, P2, Sangoi, "
            "got 'SuperLos' (did you mean 'SuperLoss'?).",
        ),
    ),
    (
        "modifier_without_name",
        M({"threshold": 1.0}),
        "losses.G_L1.modifiers[0].name",
        ("expected a modifier name", "got nothing."),
    ),
    (
        "modifier_name_number",
        M({"name": 5}),
        "losses.G_L1.modifiers[0].name",
        ("expected a modifier name, one of SuperLoss", "got 5."),
    ),
    ("modifier_not_object", M(5), "losses.G_L1.modifiers[0]", ("expected an object, got 5.",)),
    (
        "unknown_noise_kind",
        M({"name": "MinSNR", "noise_schedule": {"kind": "cosine"}}),
        "losses.G_L1.modifiers[0].noise_schedule.kind",
        ("expected one of 'scaled_linear'",),
    ),
    # -- bad modifier parameters
    (
        "threshold_word",
        M({"name": "SuperLoss", "threshold": "ema"}),
        "losses.G_L1.modifiers[0].threshold",
        ("expected a finite number, 'exp' or 'global', got \"ema\".",),
    ),
    (
        "momentum_range",
        M({"name": "SuperLoss", "momentum": 1.5}),
        "losses.G_L1.modifiers[0].momentum",
        ("expected a number <= 1.0, got 1.5.",),
    ),
    (
        "regularization_zero",
        M({"name": "SuperLoss", "regularization": 0}),
        "losses.G_L1.modifiers[0].regularization",
        ("expected a number > 0.0, got 0.",),
    ),
    (
        "gamma_negative",
        M({"name": "MinSNR", "noise_schedule": SCALED, "gamma": -5}),
        "losses.G_L1.modifiers[0].gamma",
        ("expected a number > 0.0, got -5.",),
    ),
    (
        "prediction",
        M({"name": "MinSNR", "noise_schedule": SCALED, "prediction": "x0"}),
        "losses.G_L1.modifiers[0].prediction",
        ("expected one of 'epsilon', 'v_prediction' or",),
    ),
    (
        "snr_range_order",
        M({"name": "Sangoi", "noise_schedule": SCALED, "snr_range": [10, 1]}),
        "losses.G_L1.modifiers[0].snr_range",
        ("expected [low, high] with 0 <= low < high, got [10.0, 1.0].",),
    ),
    (
        "snr_range_length",
        M({"name": "Sangoi", "noise_schedule": SCALED, "snr_range": [1]}),
        "losses.G_L1.modifiers[0].snr_range",
        ("expected a list of at least 2 items",),
    ),
    (
        "noise_missing",
        M({"name": "P2"}),
        "losses.G_L1.modifiers[0].noise_schedule",
        ("expected a value (the key is required), got nothing.",),
    ),
    (
        "noise_values_missing",
        M({"name": "P2", "noise_schedule": {"kind": "betas"}}),
        "losses.G_L1.modifiers[0].noise_schedule.values",
        ("expected a list of numbers (one per timestep) for kind 'betas'.",),
    ),
    (
        "noise_values_range",
        M({"name": "P2", "noise_schedule": {"kind": "betas", "values": [0.1, 1.5]}}),
        "losses.G_L1.modifiers[0].noise_schedule.values",
        (
            "expected a valid 'betas' noise schedule;",
            "expected values in (0, 1), got 1.5 at index 1.",
        ),
    ),
    (
        "noise_betas_for_flow",
        M({"name": "P2", "noise_schedule": {"kind": "flow_matching", "beta_end": 0.1}}),
        "losses.G_L1.modifiers[0].noise_schedule.beta_end",
        ("expected no beta_end for kind 'flow_matching'",),
    ),
    (
        "noise_num_steps",
        M({"name": "P2", "noise_schedule": {"kind": "linear", "num_steps": 0}}),
        "losses.G_L1.modifiers[0].noise_schedule.num_steps",
        ("expected a number >= 1, got 0.",),
    ),
    # -- constructor arguments
    (
        "unknown_kwarg",
        L({"loss": "L1Loss", "kwargs": {"beta": 1.0}}),
        "losses.G_L1.kwargs",
        ("expected keyword arguments that L1Loss accepts;", "unexpected keyword argument 'beta'"),
    ),
    (
        "kwarg_typo",
        L({"loss": "TripletMarginLoss", "kwargs": {"margn": 1.0}}),
        "losses.G_L1.kwargs",
        ("'margn' (did you mean 'margin'?)",),
    ),
    (
        "kwarg_type",
        L({"loss": "TripletMarginLoss", "kwargs": {"margin": "1"}}),
        "losses.G_L1.kwargs.margin",
        ('expected a finite number (the default is 1.0), got "1".',),
    ),
    (
        "kwarg_int",
        L({"loss": "CrossEntropyLoss", "kwargs": {"ignore_index": 1.5}}),
        "losses.G_L1.kwargs.ignore_index",
        ("expected an integer (the default is -100), got 1.5.",),
    ),
    (
        "kwarg_bool",
        L({"loss": "TripletMarginLoss", "kwargs": {"swap": 1}}),
        "losses.G_L1.kwargs.swap",
        ("expected true or false (the default is False), got 1.",),
    ),
    (
        "missing_required_kwarg",
        L({"loss": "Perceptual"}),
        "losses.G_L1.kwargs",
        ("missing required keyword argument 'feature_extractor'",),
    ),
    (
        "bad_reduction",
        L({"loss": "L1Loss", "kwargs": {"reduction": "avg"}}),
        "losses.G_L1.kwargs",
        ("`reduction` expected one of 'mean', 'sum', 'none', got 'avg'",),
    ),
    (
        "reduction_with_modifiers",
        L(
            {
                "loss": "L1Loss",
                "kwargs": {"reduction": "mean"},
                "modifiers": [{"name": "SuperLoss"}],
            }
        ),
        "losses.G_L1.kwargs.reduction",
        ("expected 'none' or no reduction", 'got "mean".'),
    ),
    (
        "tensor_kwarg",
        L({"loss": "CrossEntropyLoss", "kwargs": {"weight": [1.0, [2.0]]}}),
        "losses.G_L1.kwargs.weight",
        ("expected a (nested) list of numbers to make a tensor",),
    ),
    (
        "import_without_opt_in",
        L({"loss": "os.path:join"}),
        "losses.G_L1.loss",
        ("got the import path 'os.path:join'", "load_spec(..., allow_imports=True)."),
    ),
    # -- top level
    (
        "top_level_list",
        [1, 2],
        "",
        ('expected a JSON object with a "losses" key, got a list of 2.',),
    ),
    (
        "unknown_shipped_parent",
        {"extends": "pix2pix_basc"},
        "extends",
        (
            "expected a shipped spec name, one of",
            "got 'pix2pix_basc' (did you mean 'pix2pix_basic'",
        ),
    ),
    (
        "weight_with_schedule",
        {"losses": {"a": {"loss": "L1", "weight": 100, "schedule": {"schedule": "linear"}}}},
        "losses.a.schedule",
        ("loss_weight=100.0 and a schedule both give the weight;",),
    ),
    (
        "schema_number",
        {"$schema": 1, "losses": {"a": {"loss": "L1"}}},
        "$schema",
        ("expected a string, got 1.",),
    ),
]


@pytest.mark.parametrize(
    ("spec", "path", "fragments"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_malformed_spec(tmp_path: Path, spec: Any, path: str, fragments: tuple[str, ...]) -> None:
    file = tmp_path / "bad_spec.json"
    file.write_bytes(orjson.dumps(spec))
    with pytest.raises(SpecError) as info:
        load_spec(file)
    message = str(info.value)
    prefix = f"{file}: {path} " if path else f"{file}: "
    assert message.startswith(prefix), message
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    assert info.value.path == path
    assert info.value.source == str(file)


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 25


def test_several_problems_are_listed_together(tmp_path: Path) -> None:
    file = tmp_path / "many.json"
    file.write_bytes(
        orjson.dumps({"losses": {"a": {"loss": "L1Loss", "weight": -1}, "b": {"loss": 3}}})
    )
    with pytest.raises(SpecError) as info:
        load_spec(file)
    assert str(info.value) == (
        f"{file}: 2 problems:\n"
        "  - losses.a.weight expected a number >= 0.0, got -1.\n"
        "  - losses.b.loss expected a string, got 3."
    )


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ('{"losses": {"a": {"loss": "L1Loss",}}}', 1, 35),
        ('{\n  "losses": {\n    "a": {"loss": "L1Loss" "weight": 1}\n  }\n}', 3, 28),
        ("", 1, 1),
        ('{"losses": {"a": {"loss": NaN}}}', 1, 27),
    ],
)
def test_invalid_json_reports_line_and_column(
    tmp_path: Path, text: str, line: int, column: int
) -> None:
    file = tmp_path / "broken.json"
    file.write_text(text)
    with pytest.raises(SpecError) as info:
        validate_spec_file(file)
    assert str(info.value).startswith(f"{file}: invalid JSON at line {line}, column {column}: ")


def test_extends_cycle_is_reported(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"extends": "b.json", "losses": {}}')
    (tmp_path / "b.json").write_text('{"extends": "./a.json", "losses": {}}')
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "a.json")
    assert str(info.value) == f"{tmp_path / 'b.json'}: extends cycle: a.json -> b.json -> a.json."


def test_self_extension_is_a_cycle(tmp_path: Path) -> None:
    (tmp_path / "self.json").write_text('{"extends": "self.json"}')
    with pytest.raises(SpecError, match=r"self\.json: extends cycle: self\.json -> self\.json\."):
        load_spec(tmp_path / "self.json")


def test_longer_cycle_names_only_the_loop(tmp_path: Path) -> None:
    (tmp_path / "top.json").write_text('{"extends": "x.json"}')
    (tmp_path / "x.json").write_text('{"extends": "y.json"}')
    (tmp_path / "y.json").write_text('{"extends": "x.json"}')
    with pytest.raises(SpecError, match=r"extends cycle: x\.json -> y\.json -> x\.json\.$"):
        load_spec(tmp_path / "top.json")


def test_missing_extended_file_names_the_path(tmp_path: Path) -> None:
    (tmp_path / "child.json").write_text('{"extends": "parts/base.json"}')
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "child.json")
    assert str(info.value) == (
        f"{tmp_path / 'child.json'}: extends expected an existing spec file, got "
        f"'parts/base.json' ({tmp_path / 'parts' / 'base.json'}: no such file)."
    )


def test_error_in_parent_names_the_parent(tmp_path: Path) -> None:
    (tmp_path / "base.json").write_text('{"losses": {"a": {"loss": "L1Loss", "weight": "x"}}}')
    (tmp_path / "child.json").write_text('{"extends": "base.json"}')
    with pytest.raises(SpecError, match=r"base\.json: losses\.a\.weight expected a number"):
        load_spec(tmp_path / "child.json")


def test_build_error_in_parent_names_the_parent(tmp_path: Path) -> None:
    (tmp_path / "base.json").write_text('{"losses": {"a": {"loss": "L1Loss", "kwargs": {"x": 1}}}}')
    (tmp_path / "child.json").write_text(
        '{"extends": "base.json", "losses": {"b": {"loss": "L2"}}}'
    )
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "child.json")
    assert info.value.source == str(tmp_path / "base.json")
    assert info.value.path == "losses.a.kwargs"


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"nope\.json: expected an existing spec file, got no such"):
        load_spec(tmp_path / "nope.json")
    with pytest.raises(SpecError, match=r"expected an existing spec file, got a directory"):
        load_spec(str(tmp_path) + "/")


def test_unknown_shipped_name_suggests() -> None:
    with pytest.raises(SpecError, match=r"got 'pix2pix_extnded' \(did you mean 'pix2pix_extended'"):
        load_spec("pix2pix_extnded")


def test_non_utf8_file(tmp_path: Path) -> None:
    file = tmp_path / "latin1.json"
    file.write_bytes(b'{"losses": {"\xe9": {"loss": "L1Loss"}}}')
    with pytest.raises(SpecError, match=r"latin1\.json: invalid JSON at line"):
        load_spec(file)

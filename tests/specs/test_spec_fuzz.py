"""Fuzzing the spec loader: whatever the input, the only exception is SpecError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nectarloss.losses import available_losses
from nectarloss.schedules import CURVES
from nectarloss.specs import SpecError, load_spec, loads_spec
from nectarloss.specs.models import NOISE_KINDS

BASE_DIR = Path(__file__).resolve().parent
SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The well-typed value (the mutations below add wrong ones)."""
    return strategy


small_numbers = st.one_of(
    st.integers(min_value=-1, max_value=50), st.floats(min_value=-0.5, max_value=200.0)
)
noise_schedules = st.one_of(
    st.fixed_dictionaries(
        {"kind": st.sampled_from(NOISE_KINDS[:3])},
        optional={
            "num_steps": st.integers(min_value=0, max_value=2000),
            "beta_start": st.floats(min_value=-0.1, max_value=0.2),
            "beta_end": st.floats(min_value=-0.1, max_value=1.1),
        },
    ),
    st.fixed_dictionaries(
        {
            "kind": st.sampled_from(NOISE_KINDS[3:]),
            "values": st.lists(st.floats(min_value=-0.1, max_value=2.0), max_size=6),
        }
    ),
)
modifiers = st.one_of(
    st.fixed_dictionaries(
        {"name": st.just("SuperLoss")},
        optional={
            "threshold": st.one_of(small_numbers, st.sampled_from(["exp", "global", "x"])),
            "regularization": small_numbers,
            "momentum": st.floats(min_value=-0.5, max_value=1.5),
        },
    ),
    st.fixed_dictionaries(
        {
            "name": st.sampled_from(["MinSNR", "DebiasedEstimation", "P2", "Sangoi"]),
            "noise_schedule": noise_schedules,
        },
        optional={
            "gamma": small_numbers,
            "prediction": st.sampled_from(["epsilon", "v_prediction", "sample", "x0"]),
        },
    ),
    st.fixed_dictionaries(
        {"name": st.just("Sangoi"), "noise_schedule": noise_schedules},
        optional={
            "snr_range": st.lists(small_numbers, min_size=1, max_size=3),
            "eps": small_numbers,
            "sign_safe": st.booleans(),
            "mask_key": st.one_of(st.none(), st.text(max_size=4)),
        },
    ),
)
schedules = st.fixed_dictionaries(
    {},
    optional={
        "schedule": st.sampled_from([*CURVES, "lienar"]),
        "start_epoch": st.integers(min_value=-1, max_value=100),
        "end_epoch": st.integers(min_value=-1, max_value=200),
        "initial_value": small_numbers,
        "target_value": small_numbers,
        "unit": st.sampled_from(["epoch", "step", "batch"]),
        "milestones": st.lists(st.integers(min_value=-1, max_value=20), max_size=4),
        "factor": small_numbers,
    },
)
KWARG_NAMES = [
    "reduction",
    "margin",
    "weight",
    "pos_weight",
    "delta",
    "beta",
    "eps",
    "p",
    "swap",
    "ignore_index",
    "label_smoothing",
    "log_target",
    "feature_extractor",
    "layers",
    "full",
]
kwargs = st.dictionaries(
    st.sampled_from(KWARG_NAMES),
    st.one_of(
        small_numbers,
        st.booleans(),
        st.sampled_from(["none", "mean", "sum", "batchmean"]),
        st.lists(small_numbers, max_size=3),
    ),
    max_size=2,
)
entries = st.fixed_dictionaries(
    {"loss": st.sampled_from([*available_losses(), "L1", "L1Los", "os.path:join"])},
    optional={
        "kwargs": kwargs,
        "weight": small_numbers,
        "schedule": schedules,
        "tags": st.lists(st.text(max_size=3), max_size=2),
        "modifiers": st.lists(modifiers, max_size=2),
    },
)
loss_names = st.one_of(st.sampled_from(["G_L1", "D_real", "G_GAN", "x y"]), st.text(max_size=5))
specs = st.fixed_dictionaries(
    {"losses": st.dictionaries(loss_names, st.one_of(entries, st.none()), max_size=3)},
    optional={
        "extends": st.sampled_from(["pix2pix_basic", "nope", "missing.json", ".", "../x.json"]),
        "description": st.text(max_size=5),
        "$schema": st.text(max_size=5),
    },
)


def _containers(value: Any, out: list[Any]) -> list[Any]:
    """Every dict and list inside ``value`` (``value`` included), depth first."""
    if isinstance(value, (dict, list)):
        out.append(value)
        children = value.values() if isinstance(value, dict) else value
        for child in children:
            _containers(child, out)
    return out


@st.composite
def mutated_specs(draw: st.DrawFn) -> dict[str, Any]:
    """A spec-shaped dict with up to two random mutations (replace, delete, add a key)."""
    spec: dict[str, Any] = draw(specs)
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        target = draw(st.sampled_from(_containers(spec, [])))
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if isinstance(target, dict):
            keys = list(target)
            if action == "add" or not keys:
                target[draw(st.text(max_size=6))] = draw(json_values)
            else:
                key = draw(st.sampled_from(keys))
                if action == "delete":
                    del target[key]
                else:
                    target[key] = draw(json_values)
        elif target:
            index = draw(st.integers(min_value=0, max_value=len(target) - 1))
            if action == "delete":
                del target[index]
            else:
                target[index] = draw(json_values)
        else:
            target.append(draw(json_values))
    return spec


def _check(spec: Any) -> None:
    try:
        data = orjson.dumps(spec)
    except orjson.JSONEncodeError:
        data = None
    if data is not None:
        try:
            loads_spec(data, source="fuzz.json", base_dir=BASE_DIR)
        except SpecError:
            pass
    if isinstance(spec, dict):
        try:
            load_spec(spec)
        except SpecError:
            pass


@SETTINGS
@given(json_values)
def test_random_json_only_raises_spec_error(value: Any) -> None:
    _check(value)
    _check({"losses": value})


@SETTINGS
@given(st.binary(max_size=64))
def test_random_bytes_only_raise_spec_error(data: bytes) -> None:
    try:
        loads_spec(data, source="bytes.json", base_dir=BASE_DIR)
    except SpecError:
        pass


@SETTINGS
@given(mutated_specs())
def test_spec_shaped_dicts_only_raise_spec_error(spec: dict[str, Any]) -> None:
    _check(spec)

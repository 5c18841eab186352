"""Tests for the JSON spec pipeline (nectarloss/specs/): loading, extends, building, dumping."""

from __future__ import annotations

import inspect
import pickle
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

import orjson
import pytest
import torch
from torch import Tensor, nn

from nectarloss import AdaptiveWeight, LMLoss, LossManager, Schedule
from nectarloss.functional.snr_weights import PREDICTION_TYPES
from nectarloss.losses import Perceptual
from nectarloss.modifiers import NoiseSchedule, SuperLoss
from nectarloss.specs import (
    SpecError,
    available_specs,
    build_noise_schedule,
    dump_noise_schedule,
    dump_spec,
    load_spec,
    loads_spec,
    spec_json_schema,
    validate_spec_file,
)
from nectarloss.specs.errors import json_path
from nectarloss.specs.loader import SHIPPED_DIR
from nectarloss.specs.modifier_models import MODIFIER_SPECS

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED = (
    "classification_superloss",
    "diffusion_min_snr",
    "diffusion_sangoi",
    "metric_triplet",
    "pix2pix_adaptive",
    "pix2pix_basic",
    "pix2pix_extended",
)
BATCH = 4
#: The "generator's last layer" the shipped specs' balancers look at.
LAST_LAYER = torch.nn.Parameter(torch.tensor(1.0))
NUM_CLASSES = 5


def _write(path: Path, spec: dict[str, Any] | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(spec.encode() if isinstance(spec, str) else orjson.dumps(spec))
    return path


# --------------------------------------------------------------------------- shipped files
def test_shipped_names() -> None:
    assert available_specs() == list(SHIPPED)


def test_repo_root_specs_are_links_to_the_packaged_ones() -> None:
    root = {p.name: p for p in (REPO_ROOT / "specs").glob("*.json")}
    packaged = {p.name: p for p in SHIPPED_DIR.glob("*.json")}
    assert root.keys() == packaged.keys() == {f"{n}.json" for n in SHIPPED}
    for name, path in root.items():
        assert path.is_symlink(), f"specs/{name} should link to nectarloss/specs/json/{name}"
        assert path.resolve() == packaged[name].resolve()


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_spec_validates_by_name_and_path(name: str) -> None:
    validate_spec_file(name)
    validate_spec_file(REPO_ROOT / "specs" / f"{name}.json")


def _inputs(name: str) -> dict[str, tuple[tuple[Tensor, ...], dict[str, Any]]]:
    """Inputs for one step of each loss of a shipped spec."""
    torch.manual_seed(0)
    # both depend on LAST_LAYER, where pix2pix_adaptive's G_GAN compares gradients
    image = torch.rand(BATCH, 3, 8, 8) * LAST_LAYER
    target = torch.rand(BATCH, 3, 8, 8)
    logits = torch.randn(BATCH, 1, 4, 4) * LAST_LAYER
    if name.startswith("pix2pix"):
        out: dict[str, tuple[tuple[Tensor, ...], dict[str, Any]]] = {
            loss: ((image, target), {}) for loss in ("G_L1", "G_L2", "G_SOBEL", "G_LAP")
        }  # reconstruction first: the adaptive weight's reference
        out["G_GAN"] = ((logits, torch.ones_like(logits)), {})
        out["D_real"] = ((logits, torch.ones_like(logits)), {})
        out["D_fake"] = ((logits, torch.zeros_like(logits)), {})
        return out
    if name.startswith("diffusion"):
        pred = torch.randn(BATCH, 4, 8, 8, requires_grad=True)
        timesteps = torch.tensor([0, 10, 500, 999])
        return {"denoise": ((pred, torch.randn(BATCH, 4, 8, 8)), {"timesteps": timesteps})}
    if name.startswith("classification"):
        class_logits = torch.randn(BATCH, NUM_CLASSES, requires_grad=True)
        labels = torch.randint(0, NUM_CLASSES, (BATCH,))
        return {"cross_entropy": ((class_logits, labels), {})}
    anchor = torch.randn(BATCH, 8, requires_grad=True)
    return {"triplet": ((anchor, torch.randn(BATCH, 8), torch.randn(BATCH, 8)), {})}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_spec_runs_one_step(name: str) -> None:
    lm = LossManager(enable_logging=False)
    registered = lm.init_from_spec(lambda: load_spec(name))
    for balancer in lm.balancers:
        if isinstance(balancer, AdaptiveWeight):
            balancer.last_layer = LAST_LAYER
    inputs = _inputs(name)
    assert set(registered) <= set(inputs)
    losses = [
        lm.compute_loss(n, *args, epoch=0, **ctx)
        for n, (args, ctx) in inputs.items()
        if n in registered
    ]
    total = torch.stack(losses).sum()
    assert total.ndim == 0 and torch.isfinite(total)
    total.backward()
    values = lm.get_loss_values(precision=6)
    assert set(values) == set(registered)
    assert all(isinstance(v, float) for v in values.values())


@pytest.mark.parametrize("name", SHIPPED)
def test_round_trip_through_the_manager(name: str) -> None:
    lm = LossManager(enable_logging=False)
    lm.init_from_spec(load_spec, name)
    for balancer in lm.balancers:
        if isinstance(balancer, AdaptiveWeight):
            balancer.last_layer = LAST_LAYER
    for loss, (args, ctx) in _inputs(name).items():
        if loss in lm:
            lm.compute_loss(loss, *args, epoch=3, **ctx)
    dumped = dump_spec(lm.get_registered_losses())
    assert dumped == dump_spec(load_spec(name))
    assert dump_spec(load_spec(dumped)) == dumped
    assert orjson.loads(orjson.dumps(dumped)) == dumped


def test_modifier_losses_are_built_unreduced() -> None:
    entry = load_spec("classification_superloss")["cross_entropy"]
    assert entry.function.reduction == "none"
    assert isinstance(entry.modifiers[0], SuperLoss)
    plain = loads_spec('{"losses": {"ce": {"loss": "CrossEntropyLoss"}}}')["ce"]
    assert plain.function.reduction == "mean"
    explicit = loads_spec(
        '{"losses": {"ce": {"loss": "CrossEntropyLoss", "kwargs": {"reduction": "none"},'
        ' "modifiers": [{"name": "SuperLoss"}]}}}'
    )["ce"]
    assert explicit.function.reduction == "none"


def test_each_load_builds_fresh_objects() -> None:
    a, b = load_spec("diffusion_min_snr"), load_spec("diffusion_min_snr")
    assert a["denoise"].function is not b["denoise"].function
    assert a["denoise"].modifiers[0] is not b["denoise"].modifiers[0]


# --------------------------------------------------------------------------- full format
FULL_SPEC: dict[str, Any] = {
    "$schema": "https://example.invalid/nectarloss-spec.json",
    "description": "every feature at once",
    "losses": {
        "G_L1": {
            "loss": "L1",
            "kwargs": {},
            "schedule": {
                "schedule": "linear",
                "start_epoch": 0,
                "end_epoch": 100,
                "initial_value": 100.0,
                "target_value": 10.0,
            },
            "tags": ["G", "pixel"],
            "modifiers": [{"name": "SuperLoss", "threshold": "exp", "regularization": 1.0}],
        },
        "steps": {
            "loss": "HuberLoss",
            "kwargs": {"delta": 0.5},
            "schedule": {"schedule": "step", "milestones": [2, 4], "factor": 0.5, "unit": "step"},
        },
        "bce": {"loss": "BCEWithLogitsLoss", "kwargs": {"pos_weight": [1.0, 2.0, 3.0]}},
        "ce": {
            "loss": "CrossEntropyLoss",
            "kwargs": {"weight": [1.0, 0.5, 2.0], "label_smoothing": 0.1},
            "modifiers": [{"name": "SuperLoss", "threshold": 1.0986, "momentum": 0.5}],
        },
        "denoise": {
            "loss": "MSELoss",
            "modifiers": [
                {"name": "MinSNR", "noise_schedule": {"kind": "linear", "num_steps": 50}},
                {
                    "name": "DebiasedEstimation",
                    "noise_schedule": {"kind": "betas", "values": [0.1, 0.2, 0.3]},
                    "snr_range": [0.001, 100.0],
                },
                {
                    "name": "P2",
                    "noise_schedule": {"kind": "flow_matching", "num_steps": 20},
                    "gamma": 0.5,
                },
                {
                    "name": "Sangoi",
                    "noise_schedule": {
                        "kind": "scaled_linear",
                        "num_steps": 30,
                        "beta_start": 0.001,
                        "beta_end": 0.02,
                    },
                    "mask_key": None,
                },
                {
                    "name": "MinSNR",
                    "noise_schedule": {"kind": "alphas_cumprod", "values": [0.9, 0.5]},
                },
                {"name": "MinSNR", "noise_schedule": {"kind": "sigmas", "values": [0.2, 1.0]}},
                {"name": "MinSNR", "noise_schedule": {"kind": "snr", "values": [4.0, 0.0]}},
            ],
        },
        "edges": {"loss": "Sobel", "kwargs": {"eps": 0.001}, "tags": ["G"]},
        "trip": {"loss": "TripletMarginLoss", "kwargs": {"margin": 0.3, "p": 1.0, "swap": True}},
    },
}


def test_full_spec_builds_what_it_says() -> None:
    losses = load_spec(FULL_SPEC)
    g = losses["G_L1"]
    assert isinstance(g.function, nn.L1Loss) and g.function.reduction == "none"
    assert g.loss_weight == 1.0 and g.tags == ["G", "pixel"]  # the schedule gives it
    assert isinstance(g.schedule, Schedule) and g.schedule.value(50) == pytest.approx(55.0)
    assert losses["steps"].function.delta == 0.5
    assert losses["steps"].schedule is not None and losses["steps"].schedule.unit == "step"
    assert torch.equal(losses["bce"].function.pos_weight, torch.tensor([1.0, 2.0, 3.0]))
    ce = losses["ce"].function
    assert ce.label_smoothing == 0.1 and torch.equal(ce.weight, torch.tensor([1.0, 0.5, 2.0]))
    snr = [m.noise_schedule.num_steps for m in losses["denoise"].modifiers]
    assert snr == [50, 3, 20, 30, 2, 2, 2]
    assert losses["denoise"].modifiers[3].mask_key is None
    assert losses["trip"].function.swap is True


def test_full_spec_round_trips() -> None:
    dumped = dump_spec(load_spec(FULL_SPEC), description="again")
    assert dumped["description"] == "again"
    assert dump_spec(load_spec(dumped)) == {"losses": dumped["losses"]}
    for name, entry in FULL_SPEC["losses"].items():
        out = dumped["losses"][name]
        assert out["weight"] == entry.get("weight", 1.0)
        assert out["tags"] == entry.get("tags", [])
        assert out["kwargs"] == entry.get("kwargs", {})
        for mine, theirs in zip(out.get("modifiers", []), entry.get("modifiers", []), strict=True):
            assert {k: v for k, v in mine.items() if k in theirs} == theirs
        if "schedule" in entry:
            assert entry["schedule"].items() <= out["schedule"].items()


def test_dump_reads_kwargs_from_module_attributes() -> None:
    losses = {
        "h": LMLoss("h", nn.HuberLoss(delta=2.0, reduction="sum")),
        "k": LMLoss("k", nn.KLDivLoss(reduction="batchmean", log_target=True)),
        "n": LMLoss("n", nn.NLLLoss(ignore_index=3), modifiers=[SuperLoss()]),
    }
    dumped = dump_spec(losses)["losses"]
    assert dumped["h"]["kwargs"] == {"reduction": "sum", "delta": 2.0}
    assert dumped["k"]["kwargs"] == {"reduction": "batchmean", "log_target": True}
    assert dumped["n"]["kwargs"] == {"ignore_index": 3}
    rebuilt = load_spec({"losses": dumped})
    assert rebuilt["n"].function.reduction == "none"
    assert rebuilt["k"].function.log_target is True


def test_dump_drops_schedule_run_state() -> None:
    entry = LMLoss("a", nn.L1Loss(), schedule=Schedule(schedule="cosine", end_epoch=10))
    entry.last_weight = 0.3  # run state lives on the LMLoss, never in the dumped curve
    schedule = dump_spec({"a": entry})["losses"]["a"]["schedule"]
    assert "current_value" not in schedule and schedule["schedule"] == "cosine"


def test_schedule_current_value_from_older_dumps_is_accepted_and_ignored() -> None:
    spec = {"losses": {"a": {"loss": "L1Loss", "schedule": {"end_epoch": 10, "current_value": 3}}}}
    schedule = load_spec(spec)["a"].schedule
    assert schedule is not None and schedule.end_epoch == 10


# --------------------------------------------------------------------------- noise schedules
def test_noise_schedule_dump_forms() -> None:
    assert dump_noise_schedule(build_noise_schedule({"kind": "linear", "num_steps": 7})) == {
        "kind": "linear",
        "num_steps": 7,
    }
    assert dump_noise_schedule(NoiseSchedule.flow_matching(12)) == {
        "kind": "flow_matching",
        "num_steps": 12,
    }
    custom = NoiseSchedule.from_betas([0.1, 0.3, 0.5])
    dumped = dump_noise_schedule(custom)
    assert dumped["kind"] == "snr" and len(dumped["values"]) == 3
    assert torch.equal(build_noise_schedule(dumped).snr_table, custom.snr_table)


def test_noise_schedule_dump_notices_changed_tables() -> None:
    schedule = build_noise_schedule({"kind": "scaled_linear", "num_steps": 5})
    schedule.snr_table.mul_(2.0)  # e.g. a checkpoint of another schedule was loaded
    assert dump_noise_schedule(schedule)["kind"] == "snr"


def test_noise_schedule_carries_its_config() -> None:
    schedule = build_noise_schedule({"kind": "betas", "values": [0.1, 0.3]})
    assert schedule.config == {"kind": "betas", "values": [0.1, 0.3]}
    copied = pickle.loads(pickle.dumps(schedule))  # the config travels with the object
    assert dump_noise_schedule(copied) == {"kind": "betas", "values": [0.1, 0.3]}


def test_build_noise_schedule_errors() -> None:
    with pytest.raises(SpecError, match=r"noise_schedule: kind expected one of"):
        build_noise_schedule({"kind": "cosine"})
    with pytest.raises(SpecError, match=r"values expected a valid 'sigmas' noise schedule"):
        build_noise_schedule({"kind": "sigmas", "values": [0.0, 1.0]})


# --------------------------------------------------------------------------- extends
def test_extends_overrides_wholesale_removes_and_appends(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "child.json",
        {
            "extends": "pix2pix_extended",
            "losses": {
                "G_L1": {"loss": "SmoothL1Loss", "weight": 50.0},
                "G_L2": None,
                "G_VGG_FREE": {"loss": "HuberLoss", "tags": ["G"]},
            },
        },
    )
    losses = load_spec(path)
    assert list(losses) == [
        "G_GAN",
        "G_L1",
        "D_real",
        "D_fake",
        "G_SOBEL",
        "G_LAP",
        "G_VGG_FREE",
    ]
    g_l1 = losses["G_L1"]
    assert isinstance(g_l1.function, nn.SmoothL1Loss)
    assert g_l1.loss_weight == 50.0
    assert g_l1.tags == []  # wholesale: the inherited tags are not merged in


def test_extends_relative_paths_and_chains(tmp_path: Path) -> None:
    _write(tmp_path / "base" / "root.json", {"losses": {"a": {"loss": "L1Loss"}}})
    _write(
        tmp_path / "base" / "mid.json",
        {"extends": "root.json", "losses": {"b": {"loss": "MSELoss"}}},
    )
    leaf = _write(
        tmp_path / "exp" / "leaf.json",
        {"extends": "../base/mid.json", "losses": {"a": None, "c": {"loss": "Sobel"}}},
    )
    assert list(load_spec(leaf)) == ["b", "c"]
    text = orjson.dumps({"extends": "base/mid.json"})
    assert list(loads_spec(text, base_dir=tmp_path)) == ["a", "b"]


def test_dict_source_resolves_extends_against_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "root.json", {"losses": {"a": {"loss": "L1Loss"}}})
    monkeypatch.chdir(tmp_path)
    assert list(load_spec({"extends": "./root.json"})) == ["a"]
    assert list(load_spec("root.json")) == ["a"]


def test_extends_only_file_is_an_alias() -> None:
    losses = loads_spec('{"extends": "pix2pix_basic", "description": "same objective"}')
    assert list(losses) == ["G_GAN", "G_L1", "D_real", "D_fake"]


# --------------------------------------------------------------------------- imports
MODULE_SOURCE = textwrap.dedent(
    """
    from torch import nn

    class ScaledL1(nn.Module):
        def __init__(self, scale: float = 1.0, reduction: str = "mean") -> None:
            super().__init__()
            self.scale = scale
            self.reduction = reduction

        def forward(self, input, target):
            out = (input - target).abs() * self.scale
            return out if self.reduction == "none" else out.mean()
    """
)


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    package = tmp_path / "nl_spec_user_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "losses.py").write_text(MODULE_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "nl_spec_user_pkg.losses:ScaledL1"


def test_imports_need_opt_in(user_module: str) -> None:
    spec = {"losses": {"mine": {"loss": user_module, "kwargs": {"scale": 2.0}}}}
    with pytest.raises(SpecError, match=r"allow_imports=True"):
        load_spec(spec)
    losses = load_spec(spec, allow_imports=True)
    module = losses["mine"].function
    assert type(module).__name__ == "ScaledL1" and module.scale == 2.0


def test_imported_loss_with_modifiers_round_trips(user_module: str) -> None:
    spec = {
        "losses": {
            "mine": {
                "loss": user_module,
                "kwargs": {"scale": 3.0},
                "modifiers": [{"name": "SuperLoss"}],
            }
        }
    }
    losses = load_spec(spec, allow_imports=True)
    assert losses["mine"].function.reduction == "none"
    dumped = dump_spec(losses)
    assert dumped["losses"]["mine"]["loss"] == user_module
    assert dumped["losses"]["mine"]["kwargs"] == {"scale": 3.0}
    assert dump_spec(load_spec(dumped, allow_imports=True)) == dumped
    lm = LossManager(enable_logging=False)
    lm.init_from_spec(load_spec, dumped, allow_imports=True)
    out = lm.compute_loss("mine", torch.zeros(2, 3), torch.ones(2, 3))
    assert torch.isfinite(out)


def test_import_errors_are_spec_errors() -> None:
    spec = {"losses": {"x": {"loss": "nl_no_such_module_xyz:Loss"}}}
    with pytest.raises(SpecError, match=r"losses\.x\.loss expected an importable object"):
        load_spec(spec, allow_imports=True)


# --------------------------------------------------------------------------- dump errors
def test_dump_rejects_what_json_cannot_hold() -> None:
    class Local(nn.Module):
        def forward(self, a: Tensor, b: Tensor) -> Tensor:
            return (a - b).abs().mean()

    custom = Schedule(schedule=lambda s, t: 1.0)
    perceptual = Perceptual(nn.Identity())
    losses = {
        "local": LMLoss("local", Local()),
        "custom": LMLoss("custom", nn.L1Loss(), schedule=custom),
        "vgg": LMLoss("vgg", perceptual),
    }
    with pytest.raises(SpecError) as info:
        dump_spec(losses)
    message = str(info.value)
    assert message.startswith("dump_spec: 3 problems:")
    assert "losses.local.loss expected a catalog loss module or an importable class" in message
    assert "losses.custom.schedule expected a built-in curve name" in message
    assert (
        "losses.vgg.kwargs.feature_extractor expected a JSON value to write, got Identity"
        in message
    )


# --------------------------------------------------------------------------- misc
def test_schema_describes_the_format() -> None:
    schema = spec_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"$schema", "description", "extends", "losses"}
    defs = schema["$defs"]
    assert {"LossSpec", "ScheduleSpec", "NoiseScheduleSpec", "SuperLossSpec", "SangoiSpec"} <= set(
        defs
    )
    assert defs["LossSpec"]["required"] == ["loss"]
    assert set(defs["LossSpec"]["properties"]) == {
        "loss",
        "kwargs",
        "weight",
        "schedule",
        "tags",
        "modifiers",
        "balancer",
    }
    assert {"AdaptiveWeightSpec", "DWASpec", "GradNormSpec", "UncertaintyWeightingSpec"} <= set(
        defs
    )
    assert orjson.loads(orjson.dumps(schema)) == schema


def test_spec_error_is_a_value_error_and_pickles() -> None:
    error = SpecError("a.json", [("losses.x.weight", "expected a number, got true")])
    assert isinstance(error, ValueError)
    assert error.path == "losses.x.weight"
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(error) == "a.json: losses.x.weight expected a number, got true."


def test_json_path_quotes_odd_names() -> None:
    assert json_path(("losses", "G_L1", "modifiers", 0, "name")) == "losses.G_L1.modifiers[0].name"
    assert json_path(("losses", "a.b")) == 'losses["a.b"]'


def test_load_spec_rejects_wrong_source_type() -> None:
    with pytest.raises(TypeError, match="load_spec: `source` expected a spec name"):
        load_spec(3)  # type: ignore[arg-type]


def test_manager_state_round_trip_after_loading() -> None:
    make: Callable[[], dict[str, LMLoss]] = lambda: load_spec("classification_superloss")  # noqa: E731
    lm = LossManager(enable_logging=False)
    lm.init_from_spec(make)
    logits, labels = torch.randn(BATCH, NUM_CLASSES), torch.randint(0, NUM_CLASSES, (BATCH,))
    lm.compute_loss("cross_entropy", logits, labels)
    state = lm.state_dict()
    fresh = LossManager(enable_logging=False)
    fresh.init_from_spec(make)
    fresh.load_state_dict(state)
    tau = lm.get_registered_losses()["cross_entropy"].modifiers[0].tau_train
    restored = fresh.get_registered_losses()["cross_entropy"].modifiers[0].tau_train
    assert torch.equal(tau, restored)


@pytest.mark.parametrize("name", sorted(MODIFIER_SPECS))
def test_modifier_models_cover_every_constructor_option(name: str) -> None:
    spec_cls = MODIFIER_SPECS[name]
    params = set(inspect.signature(spec_cls.modifier_class).parameters)
    assert params == set(spec_cls.model_fields) - {"name"}
    for param in params - {"noise_schedule"}:
        default = inspect.signature(spec_cls.modifier_class).parameters[param].default
        field_default = spec_cls.model_fields[param].default
        assert field_default == (list(default) if isinstance(default, tuple) else default)


def test_prediction_literal_matches_functional() -> None:
    field = MODIFIER_SPECS["MinSNR"].model_fields["prediction"]
    assert get_args(field.annotation) == PREDICTION_TYPES

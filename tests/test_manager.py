import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from nectarloss import LMLoss, LossManager, Schedule, UnknownLossError, read_log
from nectarloss.log import LOG_FILENAME


@pytest.fixture()
def xy() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)


def gan_manager(tmp_path: Path, **kw: object) -> LossManager:
    lm = LossManager(tmp_path, **kw)  # type: ignore[arg-type]
    lm.register_loss_fn("G_GAN", nn.MSELoss(), loss_weight=1.0, tags=["G"])
    lm.register_loss_fn("G_L1", nn.L1Loss(), loss_weight=100.0, tags=["G"])
    lm.register_loss_fn("D_real", nn.MSELoss(), loss_weight=0.5, tags=["D"])
    lm.register_loss_fn("D_fake", nn.MSELoss(), loss_weight=0.5, tags=["D"])
    return lm


def test_compute_returns_weighted_loss_with_graph(
    tmp_path: Path, xy: tuple[torch.Tensor, torch.Tensor]
) -> None:
    lm = gan_manager(tmp_path)
    x = xy[0].clone().requires_grad_()
    out = lm.compute_loss_xy("G_L1", x, xy[1], epoch=0)
    assert torch.allclose(out, nn.functional.l1_loss(x, xy[1]) * 100.0)
    out.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_raw_and_weighted_values(tmp_path: Path, xy: tuple[torch.Tensor, torch.Tensor]) -> None:
    lm = gan_manager(tmp_path)
    lm.compute_loss_xy("G_L1", *xy)
    raw = nn.functional.l1_loss(*xy).item()
    assert lm.get_loss_values(["G_L1"], precision=6, weighted=False)["G_L1"] == round(raw, 6)
    assert lm.get_loss_values(["G_L1"], precision=4)["G_L1"] == pytest.approx(round(raw * 100, 4))


def test_precision_rounds(tmp_path: Path) -> None:
    lm = LossManager(enable_logging=False)
    lm.register_loss_fn("a", lambda x, y: (x - y).abs().mean())
    lm.compute_loss_xy("a", torch.tensor([1.0]), torch.tensor([1 / 3 + 1.0]))
    assert lm.get_loss_values(precision=2) == {"a": 0.33}
    assert lm.get_loss_values(precision=5) == {"a": 0.33333}


def test_tag_and_name_queries(tmp_path: Path, xy: tuple[torch.Tensor, torch.Tensor]) -> None:
    lm = gan_manager(tmp_path)
    for name in ("G_GAN", "G_L1", "D_real", "D_fake"):
        lm.compute_loss_xy(name, *xy)
    assert list(lm.get_loss_values(query=["G"])) == ["G_GAN", "G_L1"]
    assert list(lm.get_loss_values(query=["D"])) == ["D_real", "D_fake"]
    assert list(lm.get_loss_values(query="D_real")) == ["D_real"]
    assert list(lm.get_loss_tensors(query=["G", "D_fake"])) == ["G_GAN", "G_L1", "D_fake"]
    assert lm.get_loss_weights(query=["D"]) == {"D_real": 0.5, "D_fake": 0.5}
    assert set(lm.get_registered_losses(query=["G"])) == {"G_GAN", "G_L1"}
    with pytest.raises(
        ValueError,
        match=r"`query` item 'g' matches no loss name or tag; names: .*tags: \['D', 'G'\]",
    ):
        lm.get_loss_values(query=["g"])


def test_uncomputed_loss_reads_nan_and_initial_weight(tmp_path: Path) -> None:
    lm = gan_manager(tmp_path)
    assert math.isnan(lm.get_loss_values()["G_L1"])
    assert lm.get_loss_weights()["G_L1"] == 100.0
    assert lm.get_loss_tensors() == {}


def test_strip_semantics(tmp_path: Path, xy: tuple[torch.Tensor, torch.Tensor]) -> None:
    lm = gan_manager(tmp_path)
    for _ in range(3):
        lm.compute_loss_xy("G_L1", *xy)
    stripped = lm.get_registered_losses()["G_L1"]
    assert stripped.history.losses == [] and stripped.history.weights == []
    assert (
        stripped.last_loss_map is not None
        and stripped.function is lm.get_registered_losses()["G_L1"].function
    )
    full = lm.get_registered_losses(strip=False)["G_L1"]
    assert len(full.history.losses) == 3 and full.history.weights == [100.0] * 3
    # stripping never cleared the manager's own history
    assert len(lm.get_registered_losses(strip=False)["G_L1"].history) == 3


def test_last_loss_map_is_detached_output(tmp_path: Path) -> None:
    lm = LossManager(enable_logging=False)
    lm.register_loss_fn("map", nn.L1Loss(reduction="none"), loss_weight=2.0)
    x = torch.zeros(2, 3, requires_grad=True)
    out = lm.compute_loss_xy("map", x, torch.ones(2, 3))
    assert out.shape == (2, 3) and torch.equal(out, torch.full((2, 3), 2.0))
    t = lm.get_loss_tensors(weighted=False)["map"]
    assert not t.requires_grad and torch.equal(t, torch.ones(2, 3))
    assert torch.equal(lm.get_loss_tensors()["map"], torch.full((2, 3), 2.0))
    assert lm.get_loss_values() == {"map": 2.0}


def test_schedule_weights_recorded_per_step(
    tmp_path: Path, xy: tuple[torch.Tensor, torch.Tensor]
) -> None:
    lm = LossManager(tmp_path)
    sched = Schedule(
        schedule="linear", start_epoch=1, end_epoch=3, initial_value=10.0, target_value=0.0
    )
    lm.register_loss_fn("G_L1", nn.L1Loss(), schedule=sched)
    epochs = [e for e in range(5) for _ in range(2)]
    outs = [lm.compute_loss_xy("G_L1", *xy, epoch=e) for e in epochs]
    expected = [sched.value(e) for e in epochs]
    assert lm.get_registered_losses(strip=False)["G_L1"].history.weights == expected
    raw = nn.functional.l1_loss(*xy)
    for out, w in zip(outs, expected, strict=True):
        assert torch.allclose(out, raw * w)
    # the run's weight lives on the LMLoss; the schedule stays a pure curve
    entry = lm.get_registered_losses(strip=False)["G_L1"]
    assert entry.current_weight == 0.0 and lm.get_loss_weights()["G_L1"] == 0.0
    assert sched.current_value == 10.0  # the curve at time 0, not run state
    lm.update_loss_log()
    log = read_log(lm.log_path)  # type: ignore[arg-type]
    assert log.losses["G_L1"].weights == expected and log.losses["G_L1"].steps == list(range(10))


def test_step_unit_schedule_uses_call_counter(
    tmp_path: Path, xy: tuple[torch.Tensor, torch.Tensor]
) -> None:
    lm = LossManager(enable_logging=False)
    sched = Schedule(
        schedule="linear",
        start_epoch=0,
        end_epoch=4,
        initial_value=0.0,
        target_value=4.0,
        unit="step",
    )
    lm.register_loss_fn("a", nn.L1Loss(), schedule=sched)
    weights = []
    for _ in range(6):
        lm.compute_loss_xy("a", *xy, epoch=0)
        weights.append(lm.get_loss_weights()["a"])
    assert weights == [0.0, 1.0, 2.0, 3.0, 4.0, 4.0]


def test_epoch_defaults_to_latest_given(
    tmp_path: Path, xy: tuple[torch.Tensor, torch.Tensor]
) -> None:
    lm = LossManager(enable_logging=False)
    lm.register_loss_fn(
        "a",
        nn.L1Loss(),
        schedule=Schedule(schedule="step", initial_value=1.0, milestones=(2,), factor=0.5),
    )
    lm.register_loss_fn(
        "b",
        nn.L1Loss(),
        schedule=Schedule(schedule="step", initial_value=1.0, milestones=(2,), factor=0.5),
    )
    lm.compute_loss_xy("a", *xy, epoch=3)
    lm.compute_loss_xy("b", *xy)
    assert lm.get_loss_weights() == {"a": 0.5, "b": 0.5}


def test_multi_input_losses(tmp_path: Path) -> None:
    torch.manual_seed(0)
    lm = LossManager(tmp_path)
    lm.register_loss_fn("trip", nn.TripletMarginLoss(margin=1.0), loss_weight=2.0, tags=["metric"])
    lm.register_loss_fn("rank", nn.MarginRankingLoss(margin=0.1))
    lm.register_loss_fn("cos", nn.CosineEmbeddingLoss())
    a, p, n = (torch.randn(8, 16) for _ in range(3))
    assert torch.allclose(
        lm.compute_loss("trip", a, p, n, epoch=0), nn.TripletMarginLoss(margin=1.0)(a, p, n) * 2.0
    )
    assert torch.allclose(
        lm.compute_loss_xyz("trip", a, p, n), nn.TripletMarginLoss(margin=1.0)(a, p, n) * 2.0
    )
    x1, x2, sign = torch.randn(8), torch.randn(8), torch.sign(torch.randn(8))
    assert torch.allclose(
        lm.compute_loss("rank", x1, x2, sign), nn.MarginRankingLoss(margin=0.1)(x1, x2, sign)
    )
    assert torch.allclose(lm.compute_loss("cos", a, p, sign), nn.CosineEmbeddingLoss()(a, p, sign))
    lm.update_loss_log()
    assert set(read_log(tmp_path / LOG_FILENAME).losses) == {"trip", "rank", "cos"}


def test_buffer_full_auto_flush(tmp_path: Path, xy: tuple[torch.Tensor, torch.Tensor]) -> None:
    lm = LossManager(tmp_path, history_buffer_size=4)
    lm.register_loss_fn("a", nn.L1Loss())
    lm.register_loss_fn("b", nn.L1Loss())
    for _ in range(9):
        lm.compute_loss_xy("a", *xy)
    lm.compute_loss_xy("b", *xy)
    log = read_log(tmp_path / LOG_FILENAME)
    assert log.losses["a"].steps == list(range(8))  # two full buffers flushed automatically
    assert "b" not in log.losses and "b" in log.info  # b was registered in the header
    assert len(lm.get_registered_losses(strip=False)["a"].history) == 1
    lm.update_loss_log()
    log = read_log(tmp_path / LOG_FILENAME)
    assert log.losses["a"].steps == list(range(9)) and log.losses["b"].steps == [0]


def test_logging_disabled_keeps_latest_only_and_writes_nothing(
    tmp_path: Path, xy: tuple[torch.Tensor, torch.Tensor]
) -> None:
    lm = LossManager(tmp_path / "exp", enable_logging=False)
    lm.register_loss_fn("a", nn.L1Loss(), loss_weight=3.0)
    for i in range(5):
        lm.compute_loss_xy("a", xy[0] * i, xy[1])
    h = lm.get_registered_losses(strip=False)["a"].history
    assert h.losses == pytest.approx([nn.functional.l1_loss(xy[0] * 4, xy[1]).item()])
    assert h.weights == [3.0]
    assert lm.update_loss_log() is None
    assert not (tmp_path / "exp").exists()
    assert lm.log_path is None


def test_update_loss_log_report(
    tmp_path: Path, xy: tuple[torch.Tensor, torch.Tensor], capsys: pytest.CaptureFixture[str]
) -> None:
    lm = gan_manager(tmp_path)
    lm.compute_loss_xy("G_L1", *xy)
    assert lm.update_loss_log() is None
    assert capsys.readouterr().out == ""
    lm.compute_loss_xy("G_L1", *xy)
    msg = lm.update_loss_log(silent=False, capture=True)
    assert msg is not None and msg.startswith("Loss log updated: 1 values of 4 losses in")
    lm.update_loss_log(silent=False)
    assert "Loss log updated: 0 values" in capsys.readouterr().out


def test_print_weights_and_losses(
    tmp_path: Path, xy: tuple[torch.Tensor, torch.Tensor], capsys: pytest.CaptureFixture[str]
) -> None:
    lm = gan_manager(tmp_path)
    assert (
        lm.print_weights(capture=True)
        == "Loss weights: G_GAN: 1.00 G_L1: 100.00 D_real: 0.50 D_fake: 0.50"
    )
    lm.print_weights(query=["D"])
    assert capsys.readouterr().out.strip() == "Loss weights: D_real: 0.50 D_fake: 0.50"
    lm.compute_loss_xy("G_L1", torch.zeros(2), torch.ones(2))
    assert (
        lm.print_losses(epoch=3, iteration=7, query=["G_L1"], capture=True)
        == "(epoch: 3, iters: 7) Losses: G_L1: 100.00"
    )


def test_export_base_log(tmp_path: Path, xy: tuple[torch.Tensor, torch.Tensor]) -> None:
    import orjson

    lm = gan_manager(tmp_path)
    for _ in range(3):
        lm.compute_loss_xy("G_L1", *xy)
    out = lm.export_base_log()
    assert out == tmp_path / "loss_log.json"
    data = orjson.loads(out.read_bytes())["LOSSMANAGER_LOG"]["loss_functions"]
    assert data["G_L1"]["weights"] == [100.0] * 3 and len(data["G_L1"]["loss"]) == 3
    with pytest.raises(RuntimeError, match="enable_logging=True"):
        LossManager(enable_logging=False).export_base_log()


def test_init_from_spec(tmp_path: Path) -> None:
    def spec(lambda_l1: float = 100.0) -> dict[str, LMLoss]:
        return {
            "G_L1": LMLoss(name="G_L1", function=nn.L1Loss(), loss_weight=lambda_l1, tags=["G"]),
            "D": LMLoss(name="D", function=nn.MSELoss(), tags=["D"]),
        }

    lm = LossManager(tmp_path)
    got = lm.init_from_spec(spec, lambda_l1=50.0)
    assert set(got) == {"G_L1", "D"} and lm.get_loss_weights()["G_L1"] == 50.0
    with pytest.raises(ValueError, match="already registered"):
        lm.init_from_spec(spec)


def test_init_from_spec_is_all_or_nothing(tmp_path: Path) -> None:
    lm = LossManager(tmp_path)
    with pytest.raises(
        ValueError, match="G_L1: `loss_weight` expected a finite float >= 0, got -1.0"
    ):
        lm.init_from_spec(
            lambda: {
                "ok": LMLoss("ok", nn.L1Loss()),
                "G_L1": LMLoss("G_L1", nn.L1Loss(), loss_weight=-1.0),
            }
        )
    assert len(lm) == 0
    with pytest.raises(ValueError, match="expected an LMLoss named 'x', got 'y'"):
        lm.init_from_spec(lambda: {"x": LMLoss("y", nn.L1Loss())})
    with pytest.raises(TypeError, match="expected to return dict"):
        lm.init_from_spec(lambda: [1])
    with pytest.raises(TypeError, match="entry 'x' expected a nectarloss.LMLoss, got builtins.int"):
        lm.init_from_spec(lambda: {"x": 1})
    with pytest.raises(TypeError, match="`spec` expected a callable"):
        lm.init_from_spec(3)  # type: ignore[arg-type]


# ----------------------------------------------------------------- bad input
def test_unknown_loss_lists_registered_names(
    tmp_path: Path, xy: tuple[torch.Tensor, torch.Tensor]
) -> None:
    lm = gan_manager(tmp_path)
    with pytest.raises(UnknownLossError) as info:
        lm.compute_loss_xy("G_l1", *xy)
    assert (
        str(info.value)
        == "LossManager: no loss named 'G_l1'; registered: 'G_GAN', 'G_L1', 'D_real', 'D_fake'."
    )
    assert isinstance(info.value, KeyError)


def test_duplicate_name(tmp_path: Path) -> None:
    lm = gan_manager(tmp_path)
    with pytest.raises(ValueError, match="a loss named 'G_L1' is already registered"):
        lm.register_loss_fn("G_L1", nn.L1Loss())


@pytest.mark.parametrize("weight", [-1.0, math.nan, math.inf])
def test_bad_weight(tmp_path: Path, weight: float) -> None:
    lm = LossManager(tmp_path)
    with pytest.raises(ValueError, match=r"G_L1: `loss_weight` expected a finite float >= 0, got"):
        lm.register_loss_fn("G_L1", nn.L1Loss(), loss_weight=weight)
    with pytest.raises(TypeError, match=r"`loss_weight` expected a float, got str"):
        lm.register_loss_fn("G_L1", nn.L1Loss(), loss_weight="1")  # type: ignore[arg-type]
    assert len(lm) == 0


@pytest.mark.parametrize("name", ["", "a/b", "a\\b", "a\nb", "a\x00", " a", 3])
def test_bad_names(tmp_path: Path, name: object) -> None:
    lm = LossManager(tmp_path)
    with pytest.raises((ValueError, TypeError), match="`loss_name` expected"):
        lm.register_loss_fn(name, nn.L1Loss())  # type: ignore[arg-type]


def test_bad_registration_arguments(tmp_path: Path) -> None:
    lm = LossManager(tmp_path)
    with pytest.raises(TypeError, match="a: `loss_fn` expected a callable"):
        lm.register_loss_fn("a", 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a: `schedule` expected a Schedule or None, got dict"):
        lm.register_loss_fn("a", nn.L1Loss(), schedule={"schedule": "linear"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="`tags` expected a list of str"):
        lm.register_loss_fn("a", nn.L1Loss(), tags=[1])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="a: `modifiers` expected nectarloss modifiers, got L1Loss"):
        lm.register_loss_fn("a", nn.L1Loss(), modifiers=[nn.L1Loss()])  # type: ignore[list-item]
    assert len(lm) == 0
    lm.register_loss_fn("a", nn.L1Loss(), tags="G")
    assert lm.get_registered_losses()["a"].tags == ["G"]


def test_non_tensor_output_keeps_recorded_data(
    tmp_path: Path, xy: tuple[torch.Tensor, torch.Tensor]
) -> None:
    lm = LossManager(tmp_path)
    state = {"bad": False}

    def flaky(x: torch.Tensor, y: torch.Tensor) -> object:
        return 1.0 if state["bad"] else (x - y).abs().mean()

    lm.register_loss_fn("flaky", flaky)
    lm.compute_loss_xy("flaky", *xy)
    state["bad"] = True
    with pytest.raises(
        TypeError, match="flaky: the loss function expected to return a Tensor, got float"
    ):
        lm.compute_loss_xy("flaky", *xy)
    state["bad"] = False
    lm.compute_loss_xy("flaky", *xy)
    lm.update_loss_log()
    assert read_log(tmp_path / LOG_FILENAME).losses["flaky"].steps == [0, 1]


@pytest.mark.filterwarnings("ignore:Using a target size")
def test_shape_mismatch_is_named(tmp_path: Path) -> None:
    lm = LossManager(tmp_path)
    lm.register_loss_fn("G_L1", lambda x, y: nn.functional.l1_loss(x, y))  # not in the catalog
    with pytest.raises(RuntimeError, match="must match the size") as info:  # torch's own error
        lm.compute_loss_xy("G_L1", torch.zeros(2, 3), torch.zeros(4, 5))
    if sys.version_info >= (3, 11):
        assert info.value.__notes__ == [
            "nectarloss: raised by loss 'G_L1' on inputs of shape (2, 3), (4, 5)"
        ]


def test_unexpected_context_keyword(tmp_path: Path, xy: tuple[torch.Tensor, torch.Tensor]) -> None:
    lm = LossManager(tmp_path)
    lm.register_loss_fn("G_L1", nn.L1Loss())
    with pytest.raises(TypeError, match=r"G_L1: unexpected keyword\(s\) \['epcoh'\]"):
        lm.compute_loss_xy("G_L1", *xy, epcoh=3)


def test_constructor_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="`experiment_dir` expected a directory path"):
        LossManager()
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(
        NotADirectoryError, match="`experiment_dir` expected a directory, got the file"
    ):
        LossManager(f)
    with pytest.raises(ValueError, match="`history_buffer_size` expected an int >= 1, got 0"):
        LossManager(tmp_path, history_buffer_size=0)
    with pytest.raises(TypeError, match="`history_buffer_size` expected an int, got float"):
        LossManager(tmp_path, history_buffer_size=1.5)  # type: ignore[arg-type]


def test_resume_appends_to_existing_log(
    tmp_path: Path, xy: tuple[torch.Tensor, torch.Tensor]
) -> None:
    lm = gan_manager(tmp_path)
    lm.compute_loss_xy("G_L1", *xy)
    lm.close()
    lm2 = LossManager(tmp_path, resume=True)
    lm2.register_loss_fn("G_L1", nn.L1Loss(), loss_weight=100.0)
    lm2.compute_loss_xy("G_L1", *xy)
    lm2.update_loss_log()
    log = read_log(tmp_path / LOG_FILENAME)
    assert len(log.losses["G_L1"].values) == 2


def test_to_moves_modules(tmp_path: Path) -> None:
    lm = LossManager(tmp_path, device="cpu")
    mod = nn.Linear(2, 2)
    lm.register_loss_fn("a", lambda x, y: (mod(x) - y).abs().mean())
    lm.register_loss_fn("b", nn.L1Loss())
    assert lm.to("cpu") is lm and "a" in lm and len(lm) == 2
    assert "LossManager(losses=['a', 'b']" in repr(lm)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_values_stay_on_device(tmp_path: Path) -> None:
    lm = LossManager(tmp_path, device="cuda")
    lm.register_loss_fn("a", nn.L1Loss())
    x = torch.randn(4, 4, device="cuda")
    for _ in range(300):
        lm.compute_loss_xy("a", x, x * 0)
    h = lm.get_registered_losses(strip=False)["a"].history
    assert h.values_tensor().device.type == "cuda"
    lm.update_loss_log()
    assert len(read_log(tmp_path / LOG_FILENAME).losses["a"].values) == 300


def test_catalog_loss_arity_is_checked(tmp_path: Path) -> None:
    lm = LossManager(tmp_path)
    lm.register_loss_fn("G_L1", nn.L1Loss())
    lm.register_loss_fn("trip", nn.TripletMarginLoss())
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"G_L1: expected 2 inputs \(input, target\), got 3\."):
        lm.compute_loss("G_L1", x, x, x)
    with pytest.raises(
        ValueError, match=r"trip: expected 3 inputs \(anchor, positive, negative\), got 2\."
    ):
        lm.compute_loss_xy("trip", x, x)
    assert lm.compute_loss("G_L1", x, x).item() == 0.0  # still usable


def test_summary_table(tmp_path: Path) -> None:
    lm = LossManager(tmp_path)
    lm.register_loss_fn("a", nn.L1Loss(), loss_weight=2.0)
    for v in (1.0, 3.0, 2.0):
        lm.compute_loss_xy("a", torch.full((2,), v), torch.zeros(2))
    text = lm.summary(capture=True)
    assert text is not None
    row = next(line for line in text.splitlines() if " a " in line)
    # weighted values 2, 6, 4: last 4, mean 4, min 2, max 6; weight 2; 3 values
    assert row.replace("│", " ").split() == [
        "a",
        "4.0000",
        "4.0000",
        "2.0000",
        "6.0000",
        "2.0000",
        "3",
    ]
    off = LossManager(enable_logging=False)
    off.register_loss_fn("b", nn.L1Loss())
    off.compute_loss_xy("b", torch.ones(2), torch.zeros(2))
    assert "1.0000" in (off.summary(capture=True) or "")


def test_get_confidences_errors(tmp_path: Path) -> None:
    lm = LossManager(tmp_path)
    lm.register_loss_fn("a", nn.L1Loss())
    with pytest.raises(
        ValueError, match="a: `get_confidences` expected a loss with a SuperLoss modifier"
    ):
        lm.get_confidences("a")


def test_init_from_spec_json_name_and_path(tmp_path: Path) -> None:
    lm = LossManager(tmp_path / "a")
    got = lm.init_from_spec("pix2pix_basic")
    assert list(got) == ["G_GAN", "G_L1", "D_real", "D_fake"]
    assert lm.get_loss_weights(query=["G"]) == {"G_GAN": 1.0, "G_L1": 100.0}
    spec = tmp_path / "mine.json"
    spec.write_text(
        '{"extends": "pix2pix_basic", "losses": {"D_fake": null, '
        '"G_L1": {"loss": "L1Loss", "weight": 10.0, "tags": ["G"]}}}'
    )
    lm2 = LossManager(tmp_path / "b")
    lm2.init_from_spec(spec)
    assert lm2.get_loss_weights() == {"G_GAN": 1.0, "G_L1": 10.0, "D_real": 1.0}
    from nectarloss.specs import SpecError

    with pytest.raises(SpecError, match="did you mean 'pix2pix_basic'"):
        lm2.init_from_spec("pix2pix_basc")
    assert len(lm2) == 3


def test_public_api_is_exported() -> None:
    import nectarloss

    for name in nectarloss.__all__:
        assert hasattr(nectarloss, name), name
    assert set(nectarloss.load_spec("metric_triplet")) == {"triplet"}


def test_step_schedule_logs_exact_weights(tmp_path: Path) -> None:
    sched = Schedule(
        schedule="cosine", end_epoch=50, initial_value=3.0, target_value=0.1, unit="step"
    )
    lm = LossManager(tmp_path, history_buffer_size=32)
    lm.register_loss_fn("a", nn.L1Loss(), schedule=sched)
    for _ in range(70):
        lm.compute_loss_xy("a", torch.ones(2), torch.zeros(2))
    lm.update_loss_log()
    assert read_log(tmp_path / LOG_FILENAME).losses["a"].weights == [
        sched.value(s) for s in range(70)
    ]


def test_loss_weight_with_schedule_is_refused_not_dropped(tmp_path: Path) -> None:
    lm = LossManager(enable_logging=False)
    sched = Schedule(schedule="linear", end_epoch=10, initial_value=100.0, target_value=0.0)
    with pytest.raises(ValueError, match=r"^G_L1: loss_weight=100.0 and a schedule both give"):
        lm.register_loss_fn("G_L1", nn.L1Loss(), loss_weight=100.0, schedule=sched)
    assert "G_L1" not in lm
    with pytest.raises(ValueError, match=r"^b: loss_weight=2.0 and a schedule"):
        lm.init_from_spec(lambda: {"b": LMLoss("b", nn.L1Loss(), 2.0, schedule=sched)})
    lm.register_loss_fn("G_L1", nn.L1Loss(), loss_weight=1.0, schedule=sched)  # the default
    assert lm.get_loss_weights() == {"G_L1": 100.0}


def test_loss_tensors_weighted_like_values(tmp_path: Path) -> None:
    lm = LossManager(enable_logging=False)
    lm.register_loss_fn("map", nn.L1Loss(reduction="none"), loss_weight=3.0)
    lm.compute_loss_xy("map", torch.zeros(2, 2), torch.ones(2, 2))
    assert torch.equal(lm.get_loss_tensors()["map"], torch.full((2, 2), 3.0))
    assert torch.equal(lm.get_loss_tensors(weighted=False)["map"], torch.ones(2, 2))
    assert lm.get_loss_values() == {"map": 3.0}
    assert lm.get_loss_values(weighted=False) == {"map": 1.0}


def test_history_buffer_size_set_later_applies_to_registered_losses(
    tmp_path: Path, xy: tuple[torch.Tensor, torch.Tensor]
) -> None:
    lm = LossManager(tmp_path, history_buffer_size=100)
    lm.register_loss_fn("a", nn.L1Loss())
    lm.compute_loss_xy("a", *xy)
    lm.history_buffer_size = 3  # as NectarGAN's toolbox sets `buffer_size` after construction
    lm.register_loss_fn("b", nn.L1Loss())
    for _ in range(2):
        lm.compute_loss_xy("a", *xy)
        lm.compute_loss_xy("b", *xy)
    log = read_log(tmp_path / LOG_FILENAME)
    assert log.losses["a"].steps == [0, 1, 2] and "b" not in log.losses
    lm.compute_loss_xy("b", *xy)
    assert read_log(tmp_path / LOG_FILENAME).losses["b"].steps == [0, 1, 2]
    with pytest.raises(ValueError, match="`history_buffer_size` expected an int >= 1, got 0"):
        lm.history_buffer_size = 0
    assert lm.history_buffer_size == 3


def test_remove_loss_flushes_it_and_a_new_one_continues_its_steps(
    tmp_path: Path, xy: tuple[torch.Tensor, torch.Tensor]
) -> None:
    lm = LossManager(tmp_path)
    lm.register_loss_fn("a", nn.L1Loss(), loss_weight=2.0, tags=["G"])
    lm.register_loss_fn("b", nn.L1Loss())
    for _ in range(3):
        lm.compute_loss_xy("a", *xy)
    removed = lm.remove_loss("a")
    assert removed.name == "a" and "a" not in lm and list(lm.get_loss_values()) == ["b"]
    assert read_log(tmp_path / LOG_FILENAME).losses["a"].steps == [0, 1, 2]  # nothing lost
    lm.register_loss_fn("a", nn.MSELoss(), loss_weight=5.0)
    lm.compute_loss_xy("a", *xy)
    lm.update_loss_log()
    series = read_log(tmp_path / LOG_FILENAME).losses["a"]
    assert series.steps == [0, 1, 2, 3] and series.weights == [2.0, 2.0, 2.0, 5.0]
    with pytest.raises(UnknownLossError, match="no loss named 'zz'"):
        lm.remove_loss("zz")

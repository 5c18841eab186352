import io
import struct
import sys
import zlib
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest
import torch
from rich.console import Console

from nectarloss.demo import (
    DEFAULT_CONFIG_PATH,
    DemoConfig,
    DemoResult,
    PatchDiscriminator,
    UNetGenerator,
    load_demo_config,
    make_pairs,
    pix2pix_roles,
    resolve_device,
    run_demo,
    sample_grid,
    write_png,
)
from nectarloss.demo.images import SAMPLE_LABELS, save_loss_graph, text_mask
from nectarloss.log import read_log

REPO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo.json"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SPEC_LOSSES = {"G_GAN", "G_L1", "D_real", "D_fake"}  # specs/pix2pix_basic.json

#: A run of a few seconds on a CPU: 2 epochs of 15 steps on 16 px images.
TINY = {
    "epochs": 2,
    "steps_per_epoch": 15,
    "batch_size": 8,
    "image_size": 16,
    "unet_depth": 3,
    "base_channels": 8,
    "num_heldout": 16,
    "log_every": 5,
}
#: The held-out L1 must end below this fraction of the initial one. A loose bound: the seeded
#: TINY run ends at 0.27 of it on CPU (measured, torch 2.13), so other devices and versions fit.
L1_DROP = 0.7


def quiet() -> Console:
    return Console(file=io.StringIO(), width=120)


def read_png(path: Path) -> tuple[int, int, bytes]:
    """(width, height, raw RGB rows with filter bytes) of a PNG written by write_png."""
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    pos, chunks = len(PNG_SIGNATURE), {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        tag = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(tag + body)
        chunks[tag] = body
        pos += 12 + length
    width, height = struct.unpack(">II", chunks[b"IHDR"][:8])
    return width, height, zlib.decompress(chunks[b"IDAT"])


# ---------------------------------------------------------------------------- config
def test_repo_config_is_a_link_to_the_packaged_config() -> None:
    assert REPO_CONFIG.is_symlink()
    assert REPO_CONFIG.resolve() == DEFAULT_CONFIG_PATH.resolve()


def test_default_config_validates_and_matches_model_defaults() -> None:
    cfg = load_demo_config()
    assert cfg == DemoConfig()
    assert cfg.spec == "pix2pix_basic"
    assert cfg.device == "auto"
    assert load_demo_config(REPO_CONFIG) == cfg


def test_config_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(orjson.dumps({"epochz": 3}))
    with pytest.raises(ValueError, match=r"bad\.json: `epochz`"):
        load_demo_config(path)


def test_config_is_strict_about_types(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(orjson.dumps({"epochs": "4"}))
    with pytest.raises(ValueError, match="`epochs`"):
        load_demo_config(path)


def test_config_rejects_image_size_not_divisible_by_unet() -> None:
    with pytest.raises(ValueError, match="multiple of 2 \\*\\* unet_depth"):
        DemoConfig(image_size=40, unet_depth=4)


def test_config_not_json(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{epochs: 3")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_demo_config(path)


def test_resolve_device() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="`device`"):
        resolve_device("tpu9")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_resolve_device_cuda_missing() -> None:
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")


# ---------------------------------------------------------------------------- data, models
def test_make_pairs_is_seeded_and_in_range() -> None:
    x1, y1 = make_pairs(8, 16, torch.Generator().manual_seed(5))
    x2, y2 = make_pairs(8, 16, torch.Generator().manual_seed(5))
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert x1.shape == (8, 1, 16, 16) and y1.shape == (8, 3, 16, 16)
    assert set(x1.unique().tolist()) <= {-1.0, 1.0}
    assert y1.min() >= -1.0 and y1.max() <= 1.0
    x3, _ = make_pairs(8, 16, torch.Generator().manual_seed(6))
    assert not torch.equal(x1, x3)


def test_edges_mark_region_borders() -> None:
    x, y = make_pairs(4, 32, torch.Generator().manual_seed(0))
    # an edge pixel differs from its right or lower neighbour in the target
    differs = torch.zeros(4, 32, 32, dtype=torch.bool)
    differs[:, :, :-1] |= (y[:, :, :, :-1] != y[:, :, :, 1:]).any(dim=1)
    differs[:, :-1, :] |= (y[:, :, :-1, :] != y[:, :, 1:, :]).any(dim=1)
    assert torch.equal(x[:, 0] > 0, differs)


def test_models_shapes_and_gradients() -> None:
    gen, disc = UNetGenerator(1, 3, 8, 3), PatchDiscriminator(1, 3, 8)
    x = torch.randn(2, 1, 16, 16)
    fake = gen(x)
    assert fake.shape == (2, 3, 16, 16) and fake.abs().max() <= 1.0
    logits = disc(x, fake)
    assert logits.shape == (2, 1, 2, 2)
    logits.mean().backward()
    assert all(p.grad is not None for p in gen.parameters())


def test_pix2pix_roles_rejects_unknown_roles() -> None:
    with pytest.raises(ValueError, match="fits no pix2pix role"):
        pix2pix_roles({"G_L1": ["G"], "D_real": ["D"], "D_fake": ["D"], "other": []})
    with pytest.raises(ValueError, match="'D_real' and 'D_fake'"):
        pix2pix_roles({"G_L1": ["G"], "D_real": ["D"]})


def test_write_png_round_trip(tmp_path: Path) -> None:
    image = torch.zeros(3, 2, 3)
    image[0] = 1.0  # red
    image[2, 1, 2] = -1.0
    path = write_png(tmp_path / "sub" / "x.png", image)
    width, height, raw = read_png(path)
    assert (width, height) == (3, 2)
    row0, row1 = raw[:10], raw[10:]
    assert row0[0] == 0 and row1[0] == 0  # filter bytes
    assert list(row0[1:4]) == [255, 128, 128]
    assert list(row1[7:10]) == [255, 128, 0]
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        write_png(tmp_path / "y.png", torch.zeros(2, 2))


def test_sample_grid_layout() -> None:
    x, y = make_pairs(2, 16, torch.Generator().manual_seed(0))
    grid = sample_grid(x, y, y, zoom=2, labels=None)
    assert grid.shape == (3, 2 * (2 * 18 + 2), 2 * (3 * 18 + 2))


def test_sample_grid_labels_its_columns() -> None:
    x, y = make_pairs(2, 16, torch.Generator().manual_seed(0))
    zoom, side = 8, 18  # the demo's zoom for 16 px images: 128 px cells
    bare = sample_grid(x, y, y, zoom=zoom, labels=None)
    grid = sample_grid(x, y, y, zoom=zoom)
    strip_height = grid.shape[1] - bare.shape[1]
    assert strip_height > 0 and torch.equal(grid[:, strip_height:], bare)
    ink = (grid[:, :strip_height] == -1.0).all(dim=0)  # black text on the light strip
    assert not ((grid[:, :strip_height] != -1.0) & (grid[:, :strip_height] != 0.8)).any()
    # each label at 2x ("generated" is 108 px: it fits a 128 px cell, 3x would not),
    # centred over its column of images, 4 px below the strip's top; nothing else
    scale, cell = 2, 16 * zoom
    want = torch.zeros_like(ink)
    for col, label in enumerate(SAMPLE_LABELS):
        mask = text_mask(label, scale)
        left = (2 + col * side) * zoom + (cell - mask.shape[1]) // 2
        want[2 * scale : 2 * scale + mask.shape[0], left : left + mask.shape[1]] = mask
    assert strip_height == 8 * scale + 4 * scale
    assert torch.equal(ink, want)


def test_text_mask_and_bad_labels() -> None:
    assert text_mask("i").int().tolist()[0] == [0, 0, 1, 0, 0]  # the dot of the i
    assert text_mask("ab", 3).shape == (8 * 3, (6 * 2 - 1) * 3)
    with pytest.raises(ValueError, match=r"text_mask: `text` expected lowercase .* 'X'"):
        text_mask("aXb")
    x, y = make_pairs(1, 16, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="sample_grid: `labels` expected 3 strings"):
        sample_grid(x, y, y, labels=("a", "b"))


def test_loss_graph_title_names_the_run(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from nectarloss import LossManager

    run_dir = tmp_path / "pix2pix_run7"
    lm = LossManager(run_dir)
    lm.register_loss_fn("G_L1", torch.nn.L1Loss(), tags=["G"])
    lm.compute_loss_xy("G_L1", torch.ones(2), torch.zeros(2))
    lm.close()
    log = read_log(run_dir / "loss_log.jsonl")
    created = datetime.fromisoformat(log.header["created"]).astimezone(timezone.utc)
    out = save_loss_graph(log, run_dir / "loss_graph.svg", smooth=1)
    assert out is not None
    svg = out.read_text()  # matplotlib's SVG keeps each text in a comment
    assert f"<!-- pix2pix_run7: losses, started {created:%Y-%m-%d %H:%M} UTC -->" in svg


# ---------------------------------------------------------------------------- run
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    out = tmp_path_factory.mktemp("demo")
    return run_demo({**TINY, "experiment_dir": str(out), "device": "cpu"}, console=quiet())


def test_run_demo_heldout_l1_falls(tiny_run: DemoResult) -> None:
    curve = tiny_run.heldout_l1
    assert len(curve) == TINY["epochs"] + 1
    assert curve[-1] < L1_DROP * curve[0]


def test_run_demo_writes_log_graph_and_samples(tiny_run: DemoResult) -> None:
    assert tiny_run.log_path == tiny_run.experiment_dir / "loss_log.jsonl"
    log = read_log(tiny_run.log_path)
    total = TINY["epochs"] * TINY["steps_per_epoch"]
    assert set(log.losses) == SPEC_LOSSES
    for series in log.losses.values():
        assert series.steps == list(range(total))
    assert tiny_run.loss_graph is not None
    assert tiny_run.loss_graph.read_bytes().startswith(PNG_SIGNATURE)
    width, height, _ = read_png(tiny_run.samples)
    zoom, side = 128 // TINY["image_size"], TINY["image_size"] + 2
    assert width == (3 * side + 2) * zoom  # input, generated, target
    assert height == (6 * side + 2) * zoom + 12 * 2  # six rows under the labels (2x font)
    assert tiny_run.roles == {
        "G_GAN": "G_adv",
        "G_L1": "G_rec",
        "D_real": "D_real",
        "D_fake": "D_fake",
    }


def test_run_demo_summary_matches_log(tiny_run: DemoResult) -> None:
    log = read_log(tiny_run.log_path)
    summary = tiny_run.summary
    assert set(summary) == SPEC_LOSSES
    l1 = log.losses["G_L1"]
    assert summary["G_L1"]["weight"] == 100.0
    assert summary["G_L1"]["last"] == pytest.approx(l1.values[-1] * 100.0)
    assert summary["G_L1"]["max"] == pytest.approx(max(l1.weighted))
    assert summary["G_L1"]["mean"] == pytest.approx(sum(l1.weighted) / len(l1.weighted))


def test_run_demo_flushes_each_epoch(tiny_run: DemoResult) -> None:
    lines = tiny_run.log_path.read_bytes().splitlines()
    chunks = [orjson.loads(line) for line in lines[1:]]
    assert len(chunks) == TINY["epochs"] * len(SPEC_LOSSES)
    assert {len(c["steps"]) for c in chunks} == {TINY["steps_per_epoch"]}


def test_run_demo_prints_progress_and_summary(tmp_path: Path) -> None:
    console = Console(file=io.StringIO(), width=140, force_terminal=False)
    config = {**TINY, "epochs": 1, "steps_per_epoch": 5, "experiment_dir": str(tmp_path)}
    run_demo(config, console=console)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "held-out L1 before training" in text
    assert "epoch 1/1: held-out L1" in text
    for name in SPEC_LOSSES:
        assert name in text
    assert "weights:" in text  # the live weights under the progress bar
    # a second run in the same directory starts a fresh log
    run_demo(config, console=quiet(), show_progress=False)
    assert read_log(tmp_path / "loss_log.jsonl").losses["G_L1"].steps == list(range(5))


def test_cli_demo_runs_from_config_file(tmp_path: Path) -> None:
    from nectarloss.cli import main

    config = tmp_path / "tiny.json"
    config.write_bytes(orjson.dumps({**TINY, "epochs": 1, "steps_per_epoch": 3}))
    out = tmp_path / "run"
    assert main(["demo", "--config", str(config), "--out", str(out), "--device", "cpu"]) == 0
    assert (out / "loss_log.jsonl").exists() and (out / "samples.png").exists()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_run_demo_cuda(tmp_path: Path) -> None:
    result = run_demo({**TINY, "experiment_dir": str(tmp_path), "device": "cuda"}, console=quiet())
    assert result.device.startswith("cuda")
    assert result.heldout_l1[-1] < L1_DROP * result.heldout_l1[0]


def test_run_demo_without_matplotlib_skips_only_the_graph(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    config = {**TINY, "epochs": 1, "steps_per_epoch": 2, "experiment_dir": str(tmp_path)}
    result = run_demo(config, console=quiet(), show_progress=False)
    assert result.loss_graph is None
    assert result.samples.exists() and result.log_path.exists()

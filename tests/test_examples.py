"""Smoke runs of ``examples/*.py --quick``, as a user would start them (a subprocess each)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
#: Hard stop for a hung script (generous: the machine may be busy); not a timing check.
TIMEOUT_S = 120.0
SCRIPTS = (
    "pix2pix_train",
    "diffusion_sangoi",
    "superloss_noisy_labels",
    "triplet_metric",
    "multitask_balancing",
    "pix2pix_adaptive_weight",
)


def _number(pattern: str, text: str) -> float:
    match = re.search(pattern, text, flags=re.MULTILINE)
    assert match is not None, f"{pattern!r} not in output:\n{text}"
    return float(match.group(1))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str]]:
    """Script name -> (exit code, stdout + stderr), each run in its own folder."""
    results: dict[str, tuple[int, str]] = {}
    for name in SCRIPTS:
        out = tmp_path_factory.mktemp(name)
        args = [sys.executable, str(EXAMPLES / f"{name}.py"), "--quick"]
        if name in ("pix2pix_train", "diffusion_sangoi", "pix2pix_adaptive_weight"):
            args += ["--out", str(out)]
        try:
            done = subprocess.run(
                args, cwd=out, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
            )
            results[name] = (done.returncode, done.stdout + done.stderr)
        except subprocess.TimeoutExpired as exc:
            results[name] = (-1, f"timed out: {exc}")
    return results


@pytest.mark.parametrize("name", SCRIPTS)
def test_example_quick_mode_runs(runs: dict[str, tuple[int, str]], name: str) -> None:
    code, output = runs[name]
    assert code == 0, output


def test_pix2pix_example_learns(runs: dict[str, tuple[int, str]]) -> None:
    _, output = runs["pix2pix_train"]
    before = _number(r"held-out L1 before training: ([\d.]+)", output)
    after = [float(v) for v in re.findall(r"epoch \d+/\d+: held-out L1 ([\d.]+)", output)]
    assert after and after[-1] < before
    assert "Loss weights: G_GAN: 1.00 G_L1: 100.00" in output
    assert "samples.png" in output


def test_diffusion_example_compares_three_weightings(
    runs: dict[str, tuple[int, str]],
) -> None:
    _, output = runs["diffusion_sangoi"]
    for weighting in ("none", "min_snr", "sangoi"):
        mse = _number(rf"^{weighting}\s+[\d.]+\s+([\d.]+)", output)
        assert 0.0 < mse < 1.0  # below the MSE of predicting zero noise (1.0)


def test_superloss_example_finds_flipped_labels(runs: dict[str, tuple[int, str]]) -> None:
    _, output = runs["superloss_noisy_labels"]
    assert _number(r"ROC AUC ([\d.]+)", output) > 0.75
    assert _number(r"accuracy, SuperLoss:\s+([\d.]+)", output) > 0.5


def test_triplet_example_improves_recall(runs: dict[str, tuple[int, str]]) -> None:
    _, output = runs["triplet_metric"]
    before = _number(r"recall@1 before training: ([\d.]+)", output)
    after = _number(r"recall@1 after training:\s+([\d.]+)", output)
    assert after > before


def test_multitask_example_reports_every_method(runs: dict[str, tuple[int, str]]) -> None:
    _, output = runs["multitask_balancing"]
    for method in ("none", "uncertainty", "dwa", "gradnorm"):
        rmse = _number(rf"^{method}\s+([\d.]+)\s+[\d.]+", output)
        accuracy = _number(rf"^{method}\s+[\d.]+\s+([\d.]+)", output)
        assert rmse > 0 and 0 <= accuracy <= 1
    assert "regression 1, classification 1" in output  # no balancing: weights stay 1


def test_adaptive_weight_example_compares_and_reads_the_weights(
    runs: dict[str, tuple[int, str]],
) -> None:
    _, output = runs["pix2pix_adaptive_weight"]
    assert _number(r"^\s+2\s+([\d.]+)\s+[\d.]+$", output) > 0  # fixed, epoch 2
    mean, low, high = (
        _number(r"^\s+1\s+([\d.]+)\s+[\d.]+\s+[\d.]+$", output),
        _number(r"^\s+1\s+[\d.]+\s+([\d.]+)\s+[\d.]+$", output),
        _number(r"^\s+1\s+[\d.]+\s+[\d.]+\s+([\d.]+)$", output),
    )
    assert 0 < low <= mean <= high

"""The demo's training loop: :func:`run_demo` trains the pix2pix pair and reports it all.

It shows a progress bar with live losses and weights, flushes the JSON log (and, if
asked, TensorBoard event files) each epoch,
evaluates the generator's L1 on held-out pairs before training and after each epoch,
and writes a loss graph, a sample grid and a summary table.
"""

from __future__ import annotations

import math
import os
import shlex
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text
from torch import Tensor, nn

from nectarloss.console import summary_table
from nectarloss.demo.config import DemoConfig, coerce_config, resolve_device
from nectarloss.demo.data import epoch_pairs, make_pairs
from nectarloss.demo.images import (
    LOSS_GRAPH_FILENAME,
    SAMPLES_FILENAME,
    save_loss_graph,
    save_samples,
)
from nectarloss.demo.models import PatchDiscriminator, UNetGenerator
from nectarloss.demo.step import attach_last_layer, pix2pix_roles, train_step
from nectarloss.log import read_log, summarize_log
from nectarloss.manager import LossManager
from nectarloss.sinks import TensorBoardSink

__all__ = ["DemoResult", "heldout_l1", "run_demo"]

_SAMPLE_ROWS = 6


@dataclass
class DemoResult:
    """What :func:`run_demo` produced.

    Attributes:
        experiment_dir: Where the files went.
        log_path: The JSON Lines loss log.
        loss_graph: The loss graph PNG, or ``None`` without matplotlib.
        samples: The sample grid PNG (input | generated | target).
        heldout_l1: The generator's mean L1 on the held-out pairs before training, then
            after each epoch (``epochs + 1`` values).
        summary: Per loss ``last``, ``mean``, ``min``, ``max``, ``weight`` (and
            ``count``, ``nonfinite``), from the log (weighted values).
        wall_time_s: Seconds from start to summary.
        device: The device trained on.
        config: The settings used.
        roles: Each loss's role in the pix2pix step.
        tensorboard_dir: The TensorBoard event files' directory, if asked for.
    """

    experiment_dir: Path
    log_path: Path
    loss_graph: Path | None
    samples: Path
    heldout_l1: list[float]
    summary: dict[str, dict[str, float]]
    wall_time_s: float
    device: str
    config: DemoConfig
    roles: dict[str, str] = field(default_factory=dict)
    tensorboard_dir: Path | None = None


@torch.no_grad()
def heldout_l1(
    generator: nn.Module, inputs: Tensor, targets: Tensor, batch_size: int = 64
) -> float:
    """Mean absolute error of ``generator(inputs)`` against ``targets`` (syncs once).

    The generator is put in eval mode for the measurement and restored afterwards.
    """
    was_training = generator.training
    generator.eval()
    total = torch.zeros((), device=inputs.device)
    for start in range(0, inputs.shape[0], batch_size):
        x, y = inputs[start : start + batch_size], targets[start : start + batch_size]
        total += (generator(x) - y).abs().sum()
    generator.train(was_training)
    return float(total) / targets.numel()


class _LossProgress(Progress):
    """A progress bar with a status block (the live losses and weights) below it."""

    status: Text | str = ""

    def get_renderables(self) -> Iterable[RenderableType]:
        """The bar, then the status block."""
        yield self.make_tasks_table(self.tasks)
        if self.status:
            yield self.status


def _live_text(lm: LossManager, tags: Mapping[str, list[str]]) -> Text:
    """Latest weighted losses per tag, then the weights: one batched copy to the host."""
    values = lm.get_loss_values(precision=4)
    groups: dict[str, list[str]] = {}
    for name, loss_tags in tags.items():
        groups.setdefault(loss_tags[0] if loss_tags else "-", []).append(name)
    text = Text()
    for tag, names in groups.items():
        text.append(f"  {tag}: ", style="bold")
        text.append("  ".join(f"{n} {values[n]:.4g}" for n in names) + "\n")
    weights = lm.get_loss_weights(precision=4)
    text.append("  weights: ", style="bold")
    text.append("  ".join(f"{n} {w:g}" for n, w in weights.items()))
    return text


def _fresh_outputs(directory: Path) -> None:
    """Remove the pictures a previous demo run left in ``directory`` (it writes new ones).

    The log is not removed here: the manager replaces it (``overwrite=True``) once it
    holds the log's lock, so a demo still running in the same directory is refused.
    """
    for name in (LOSS_GRAPH_FILENAME, SAMPLES_FILENAME):
        (directory / name).unlink(missing_ok=True)


def run_demo(
    config: DemoConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    *,
    console: Console | None = None,
    show_progress: bool = True,
    tensorboard: bool | str | os.PathLike[str] = False,
) -> DemoResult:
    """Train a compact pix2pix on generated pairs with a spec's objective; report it all.

    The files of a previous demo run in the same experiment directory (its log, loss
    graph and samples) are replaced.

    Args:
        config: A :class:`DemoConfig`, a mapping of its fields, a path to a JSON config,
            or ``None`` for the packaged default.
        console: Where the progress bar, the per-epoch lines and the summary go
            (default: a new rich console on stdout).
        show_progress: Draw the progress bar.
        tensorboard: Also write the losses as TensorBoard scalars (a
            :class:`~nectarloss.sinks.TensorBoardSink`): ``True`` for
            ``<experiment_dir>/tensorboard``, or a directory. The summary prints the
            ``tensorboard --logdir`` command. Needs ``nectarloss[tensorboard]``.

    Returns:
        The files written, the held-out L1 curve and the per-loss summary.

    Raises:
        ValueError: Invalid settings, an unknown device, or a spec that is not a pix2pix
            objective (see :func:`pix2pix_roles`).
        FileNotFoundError: A config or spec path that does not exist.
        MissingDependencyError: ``tensorboard`` asked for without the package.
    """
    from nectarloss.specs import load_spec  # imports the loss catalog and pydantic models

    start_time = time.perf_counter()
    cfg = coerce_config(config)
    out = console if console is not None else Console(highlight=False)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    train_stream = torch.Generator().manual_seed(cfg.seed)
    heldout_stream = torch.Generator().manual_seed(cfg.seed + 1_000_003)
    x_eval, y_eval = make_pairs(cfg.num_heldout, cfg.image_size, heldout_stream, cfg.max_shapes)
    x_eval, y_eval = x_eval.to(device), y_eval.to(device)

    gen = UNetGenerator(1, 3, cfg.base_channels, cfg.unet_depth).to(device)
    disc = PatchDiscriminator(1, 3, cfg.base_channels).to(device)
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))

    experiment_dir = Path(cfg.experiment_dir)
    experiment_dir.mkdir(parents=True, exist_ok=True)
    _fresh_outputs(experiment_dir)
    total_steps = cfg.epochs * cfg.steps_per_epoch
    tensorboard_dir = (
        None
        if tensorboard is False
        else experiment_dir / "tensorboard"
        if tensorboard is True
        else Path(tensorboard)
    )
    sinks = [] if tensorboard_dir is None else [TensorBoardSink(tensorboard_dir)]
    lm = LossManager(
        experiment_dir,
        device=device,
        history_buffer_size=cfg.steps_per_epoch,
        overwrite=True,
        sinks=sinks,
    )
    with lm:
        lm.init_from_spec(load_spec, cfg.spec)
        attach_last_layer(lm, gen.last_layer)
        registered = lm.get_registered_losses()
        tags = {name: list(entry.tags) for name, entry in registered.items()}
        roles = pix2pix_roles(tags)
        by_role: dict[str, list[str]] = {}
        for name, role in roles.items():
            by_role.setdefault(role, []).append(name)
        weights = ", ".join(f"{n} x{w:g}" for n, w in lm.get_loss_weights().items())
        out.print(
            f"nectarloss demo: pix2pix on {cfg.image_size}px generated pairs, device {device}, "
            f"spec {cfg.spec!r} ({weights})",
            markup=False,
        )
        curve = [heldout_l1(gen, x_eval, y_eval)]
        out.print(f"held-out L1 before training: {curve[0]:.4f}", markup=False)

        progress = _LossProgress(
            TextColumn("[bold]epoch {task.fields[epoch]}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=out,
            disable=not show_progress,
        )
        with progress:
            task = progress.add_task("train", total=total_steps, epoch=f"1/{cfg.epochs}")
            for epoch in range(cfg.epochs):
                gen.train()
                x_epoch, y_epoch = epoch_pairs(cfg, train_stream, device)
                for step in range(cfg.steps_per_epoch):
                    batch = slice(step * cfg.batch_size, (step + 1) * cfg.batch_size)
                    x, y = x_epoch[batch], y_epoch[batch]
                    train_step(lm, by_role, gen, disc, opt_g, opt_d, x, y, epoch)
                    done = epoch * cfg.steps_per_epoch + step + 1
                    if show_progress and (done % cfg.log_every == 0 or done == total_steps):
                        progress.status = _live_text(lm, tags)  # syncs: only every log_every
                    progress.update(task, advance=1)
                lm.update_loss_log()
                curve.append(heldout_l1(gen, x_eval, y_eval))
                progress.update(task, epoch=f"{min(epoch + 2, cfg.epochs)}/{cfg.epochs}")
                progress.console.print(
                    f"epoch {epoch + 1}/{cfg.epochs}: held-out L1 {curve[-1]:.4f} "
                    f"({curve[-1] / curve[0]:.0%} of the initial {curve[0]:.4f})",
                    markup=False,
                )
    log_path = lm.log_path
    if log_path is None:  # pragma: no cover - logging is always on here
        raise RuntimeError("demo: the loss manager kept no log.")

    rows = min(_SAMPLE_ROWS, cfg.num_heldout)
    samples = save_samples(
        gen,
        x_eval[:rows],
        y_eval[:rows],
        experiment_dir / SAMPLES_FILENAME,
        zoom=max(1, 128 // cfg.image_size),
    )
    log = read_log(log_path)
    summary = summarize_log(log)
    loss_graph = save_loss_graph(
        log, experiment_dir / LOSS_GRAPH_FILENAME, smooth=max(1, cfg.log_every // 2)
    )
    wall = time.perf_counter() - start_time
    out.print(summary_table(summary, title=f"losses over {total_steps} steps (weighted)"))
    drop = curve[-1] / curve[0] if curve[0] > 0 and math.isfinite(curve[0]) else math.nan
    out.print(
        f"held-out L1: {' -> '.join(f'{v:.4f}' for v in curve)} ({drop:.0%} of the initial)\n"
        f"wrote {log_path}, {samples}"
        + (f", {loss_graph}" if loss_graph else "")
        + f" in {wall:.1f} s",
        markup=False,
    )
    if tensorboard_dir is not None:
        command = f"tensorboard --logdir {shlex.quote(str(tensorboard_dir))}"
        out.print(f"TensorBoard: {command}", markup=False, highlight=False, soft_wrap=True)
    return DemoResult(
        experiment_dir=experiment_dir,
        log_path=log_path,
        loss_graph=loss_graph,
        samples=samples,
        heldout_l1=curve,
        summary=summary,
        wall_time_s=wall,
        device=str(device),
        config=cfg,
        roles=roles,
        tensorboard_dir=tensorboard_dir,
    )

"""Train under Hugging Face Accelerate (DDP) with nectarloss, and resume with save_state.

Every process builds the same ``LossManager`` on the same directory: each flush is a
collective that logs, per step, the mean of each loss over the processes, and the main
process writes it. The manager is registered with ``accelerator.register_for_checkpointing``,
so ``save_state`` / ``load_state`` carry it with the model and the optimizer. Accelerate
saves the main process's ``state_dict`` only and every process loads it, so the manager
is flushed (on every process) right before each ``save_state``: the checkpoint then holds
no process's unflushed values, and what it holds (step counters, weights, the log
position) is the same on every process.

A small linear regression; each step's global batch comes from a generator seeded with
the step and is split between the processes, so each process computes different loss
values, and a resumed run sees the same data as an uninterrupted one.

    # two CPU processes (gloo); on two GPUs leave out ACCELERATE_USE_CPU=1
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 \\
        examples/accelerate_train.py --out runs/accelerate --stop-after 10
    # a fresh launch: load the latest checkpoint (step 8) and finish the run; the log
    # then holds exactly what an uninterrupted run logs
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 \\
        examples/accelerate_train.py --out runs/accelerate --resume
    # or go back to any checkpoint: the log is cut there and the steps after it redone
    ... examples/accelerate_train.py --resume runs/accelerate/checkpoints/step_4
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch
from accelerate import Accelerator
from torch import nn

from nectarloss import LossManager, Schedule

GLOBAL_BATCH = 32
FEATURES = 4


def global_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The step's batch for all processes together: the same on every process and run."""
    generator = torch.Generator().manual_seed(step)
    x = torch.randn(GLOBAL_BATCH, FEATURES, generator=generator)
    y = x @ torch.arange(1.0, FEATURES + 1) + 0.1 * torch.randn(GLOBAL_BATCH, generator=generator)
    return x, y.unsqueeze(1)


def step_of(checkpoint: Path) -> int:
    """The step a ``step_<n>`` checkpoint was saved after (the next step to run)."""
    name = checkpoint.name
    if not (name.startswith("step_") and name[5:].isdigit()):
        raise ValueError(f"--resume expected a step_<n> checkpoint directory, got {name!r}.")
    return int(name[5:])


def latest_checkpoint(directory: Path) -> Path | None:
    """The ``step_<n>`` checkpoint in ``directory`` with the largest ``n``."""
    found = [p for p in directory.glob("step_*") if p.name[5:].isdigit()]
    return max(found, key=step_of) if found else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/accelerate"))
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--save-every", type=int, default=4)
    parser.add_argument("--stop-after", type=int, default=None, help="stop early (a cut run)")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        default=None,
        help="continue from a checkpoint directory (default: the latest in --out)",
    )
    args = parser.parse_args()

    accelerator = Accelerator()
    torch.manual_seed(0)
    model = nn.Linear(FEATURES, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.5)
    model, optimizer = accelerator.prepare(model, optimizer)

    # On every process, on the same directory; the main process writes the log.
    resume = args.resume is not None
    lm = LossManager(args.out, resume=resume, overwrite=not resume)
    lm.register_loss_fn("mse", nn.MSELoss(), tags=["fit"])
    decay = Schedule(
        schedule="linear",
        start_epoch=0,
        end_epoch=args.steps,
        initial_value=1.0,
        target_value=0.1,
        unit="step",
    )
    lm.register_loss_fn("l1", nn.L1Loss(), schedule=decay, tags=["fit"])
    accelerator.register_for_checkpointing(lm)

    checkpoints = args.out / "checkpoints"
    if not resume and accelerator.is_main_process:
        shutil.rmtree(checkpoints, ignore_errors=True)  # a new run: no old checkpoints
    accelerator.wait_for_everyone()
    start = 0
    if resume:
        saved = args.resume if args.resume != "latest" else latest_checkpoint(checkpoints)
        if saved is None:
            parser.error(f"--resume: no checkpoint in {checkpoints}")
        # restores the model, the optimizer, the RNGs and the manager, whose log loses
        # the lines written after the checkpoint
        accelerator.load_state(str(saved))
        start = step_of(Path(saved))
        accelerator.print(f"resumed from {saved} (step {start})")
        if accelerator.is_main_process:  # later checkpoints belong to the abandoned steps
            for later in checkpoints.glob("step_*"):
                if later.name[5:].isdigit() and step_of(later) > start:
                    shutil.rmtree(later)

    last = args.steps if args.stop_after is None else min(args.steps, args.stop_after)
    for step in range(start, last):
        x, y = global_batch(step)
        x = x.chunk(accelerator.num_processes)[accelerator.process_index].to(accelerator.device)
        y = y.chunk(accelerator.num_processes)[accelerator.process_index].to(accelerator.device)
        pred = model(x)
        loss = lm.compute_loss_xy("mse", pred, y) + lm.compute_loss_xy("l1", pred, y)
        optimizer.zero_grad()
        accelerator.backward(loss)
        optimizer.step()
        if (step + 1) % args.save_every == 0:
            lm.update_loss_log()  # every process: the checkpoint holds no unflushed values
            accelerator.save_state(str(checkpoints / f"step_{step + 1}"))
            means = lm.get_loss_values(sync=True)  # every process: a collective
            accelerator.print(f"step {step + 1}: mean over processes {means}")
    lm.close()  # every process, while the process group is up: the last flush
    accelerator.print(f"log: {lm.log_path}")
    accelerator.end_training()  # destroys the process group (a clean exit under gloo)


if __name__ == "__main__":
    main()

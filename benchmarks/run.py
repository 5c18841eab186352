"""Run every benchmark, print one summary table, write ``benchmarks/results/<machine>.json``.

Run: ``python -m benchmarks.run [--quick] [--device cuda] [--only memory,modifiers]``.
The full run takes about 5 minutes on a 2-core CPU machine, ``--quick`` about 1.
``--markdown`` also prints the table as Markdown (for ``benchmarks/README.md``).
"""

# ruff: noqa: E402
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import ModuleType

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from benchmarks import end_to_end, flush_scaling, memory, modifiers, step_overhead
from benchmarks.common import (
    Row,
    add_common_args,
    cpu_model,
    format_table,
    machine_info,
    markdown_table,
    now,
    save,
    setup,
)

#: In this order; ``modifiers`` last, since it pins glibc's malloc settings.
BENCHMARKS: dict[str, ModuleType] = {
    "step_overhead": step_overhead,
    "memory": memory,
    "flush_scaling": flush_scaling,
    "end_to_end": end_to_end,
    "modifiers": modifiers,
}


def main(argv: list[str] | None = None) -> None:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__))
    parser.add_argument(
        "--only", default=None, help=f"comma-separated subset of {list(BENCHMARKS)}"
    )
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile prototypes")
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    args = parser.parse_args(argv)
    device = setup(args)
    names = list(BENCHMARKS) if args.only is None else args.only.split(",")
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"--only: unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
    info = machine_info(device)
    print(
        f"nectarloss benchmarks on {info['cpu']} ({info['cores']} cores, torch "
        f"{info['torch']}, {info['torch_threads']} thread(s)), device {device}"
        + (f" ({info['gpu']})" if "gpu" in info else "")
        + (", quick" if args.quick else "")
    )
    all_rows: list[Row] = []
    notes: list[str] = []
    start = time.perf_counter()
    for name in names:
        module = BENCHMARKS[name]
        t0 = time.perf_counter()
        print(f"- {name} ...", flush=True)
        if name == "modifiers":
            result = module.run(device, args.quick, args.repeats, use_compile=not args.no_compile)
        else:
            result = module.run(device, args.quick, args.repeats)
        rows = module.rows(result)
        save(name, device, args, result, rows)
        all_rows += rows
        notes += [f"{name}: {n}" for n in result.get("notes", [])]
        print(f"  done in {time.perf_counter() - t0:.0f} s", flush=True)
    print()
    print(format_table(all_rows))
    for note in notes:
        print(f"  note: {note}")
    print(f"total {time.perf_counter() - start:.0f} s")
    if args.markdown:
        command = "python -m benchmarks.run" + " ".join([""] + (argv or sys.argv[1:]))
        print()
        print(
            f"Machine: {cpu_model()}, {info['cores']} cores, torch {info['torch']}, "
            f"{info['torch_threads']} thread(s), device {device}. Date: {now()}. "
            f"Command: `{command}`."
        )
        print()
        print(markdown_table(all_rows))
        for note in notes:
            print(f"- {note}")
    if device.type == "cuda":
        torch.cuda.synchronize(device)


if __name__ == "__main__":
    main()

"""Shared helpers: arguments, interleaved timing, machine description, result files.

Every comparison runs both sides in one process, interleaved (A B, then B A, ...), and
reports the median over repeats of the per-repeat ratio, so slow phases of a noisy
machine hit both sides alike.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"


# ------------------------------------------------------------------------------ arguments
def add_common_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, ...")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and steps")
    parser.add_argument("--repeats", type=int, default=None, help="override the repeats")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads; default 1 on CPU (stable on a shared machine), "
        "torch's own default on CUDA; 0 keeps torch's default",
    )
    parser.add_argument(
        "--no-save", action="store_true", help="do not write benchmarks/results/<machine>.json"
    )
    return parser


def setup(args: argparse.Namespace) -> torch.device:
    """Check ``--device`` and apply ``--threads``."""
    device = torch.device(args.device)
    threads = args.threads if args.threads is not None else (1 if device.type == "cpu" else 0)
    if threads > 0:
        torch.set_num_threads(threads)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: CUDA is not available on this machine.")
    return device


def pick(quick: bool, full: int, fast: int, override: int | None = None) -> int:
    return override if override is not None else (fast if quick else full)


# ------------------------------------------------------------------------------ timing
def sync(device: torch.device) -> None:
    """Wait for queued device work (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_per_call(fn: Callable[[], object], n: int, device: torch.device) -> float:
    """Seconds per call of ``fn`` over ``n`` calls, device work included."""
    sync(device)
    start = time.perf_counter()
    for _ in range(n):
        fn()
    sync(device)
    return (time.perf_counter() - start) / n


def interleave(
    cases: Mapping[str, Callable[[], object]],
    n: int,
    repeats: int,
    device: torch.device,
    warmup: int = 1,
    between: Callable[[], object] | None = None,
) -> dict[str, list[float]]:
    """Per-call seconds of each case, once per repeat, cases alternating in order.

    Odd repeats run the cases in reverse order. ``between`` runs after each repeat,
    outside the timed regions (e.g. to flush buffers).
    """
    names = list(cases)
    for name in names:
        for _ in range(warmup):
            cases[name]()
    sync(device)
    out: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else reversed(names):
            out[name].append(time_per_call(cases[name], n, device))
        if between is not None:
            between()
    return out


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def median_ratio(num: Sequence[float], den: Sequence[float]) -> float:
    """Median over repeats of ``num[i] / den[i]``."""
    return statistics.median(a / b for a, b in zip(num, den, strict=True))


def spread(values: Sequence[float]) -> tuple[float, float]:
    """(min, max) of the values: shown next to medians to expose the noise."""
    return min(values), max(values)


# ------------------------------------------------------------------------------ machine
def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else platform.machine()


def machine_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def machine_name(device: torch.device) -> str:
    """File name stem for the results: CPU model and cores, plus the GPU when used."""
    parts = [cpu_model(), f"{os.cpu_count()}c"]
    if device.type == "cuda":
        parts.append(torch.cuda.get_device_name(device))
    return re.sub(r"[^a-z0-9]+", "-", " ".join(parts).lower()).strip("-")


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# ------------------------------------------------------------------------------ reporting
@dataclass
class Row:
    """One line of the summary table."""

    item: str
    measure: str
    ours: str
    baseline: str
    result: str
    target: str
    met: bool | None = None  # None: informative, no target

    @property
    def verdict(self) -> str:
        return "-" if self.met is None else ("yes" if self.met else "NO")


HEADERS = ("#", "measure", "nectarloss", "baseline", "result", "target", "met")


def _cells(row: Row) -> list[str]:
    return [row.item, row.measure, row.ours, row.baseline, row.result, row.target, row.verdict]


def format_table(rows: Sequence[Row]) -> str:
    table = [list(HEADERS)] + [_cells(r) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADERS))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in table
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: Sequence[Row]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return "\n".join(lines)


def fmt_us(seconds: float) -> str:
    return f"{seconds * 1e6:.2f} us"


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def fmt_s(seconds: float) -> str:
    return f"{seconds:.2f} s"


def save(
    name: str,
    device: torch.device,
    args: argparse.Namespace,
    payload: Mapping[str, Any],
    rows: Sequence[Row],
) -> Path | None:
    """Merge one benchmark's results into ``benchmarks/results/<machine>.json``."""
    if getattr(args, "no_save", False):
        return None
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{machine_name(device)}.json"
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            data = {}
    data["machine"] = machine_info(device)
    data.setdefault("benchmarks", {})[name] = {
        "date": now(),
        "quick": bool(args.quick),
        "results": payload,
        "rows": [asdict(r) | {"met": r.met} for r in rows],
    }
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def report(
    name: str,
    device: torch.device,
    args: argparse.Namespace,
    payload: Mapping[str, Any],
    rows: Sequence[Row],
) -> None:
    """Print the table (and notes) and write the results file."""
    print(format_table(rows))
    for note in payload.get("notes", []):
        print(f"  note: {note}")
    path = save(name, device, args, payload, rows)
    if path is not None:
        print(f"  results: {path}")


def script_main(
    name: str,
    doc: str | None,
    run: Callable[[torch.device, bool, int | None], dict[str, Any]],
    rows: Callable[[dict[str, Any]], list[Row]],
    argv: list[str] | None = None,
) -> None:
    """The command line of a benchmark script with only the common options."""
    parser = add_common_args(argparse.ArgumentParser(description=doc))
    args = parser.parse_args(argv)
    device = setup(args)
    result = run(device, args.quick, args.repeats)
    report(name, device, args, result, rows(result))

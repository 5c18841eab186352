"""Reading a long run's loss log: time and peak memory of the reading side.

Generates a log of ``--values`` logged values in the documented JSON Lines format
(a header line, then one ``chunk`` line per loss per flush of ``--chunk`` steps; four
losses, one constant weight of 100, one weight schedule that changes every 1,000
steps, a few NaN values written as ``"NaN"``) and measures, each in a fresh Python
process so that peak RSS belongs to that one operation:

* ``read_log``: :func:`nectarloss.log.read_log` of the file;
* ``summarize_log``: ``summarize_log(read_log(path))``;
* ``show``: ``nectarloss show LOG`` in-process (``cli.main``, output discarded);
* ``plot``: ``nectarloss plot LOG`` in-process (skipped without matplotlib);
* ``export``: ``nectarloss export LOG`` in-process.

Time excludes interpreter start-up and imports (``import nectarloss`` alone takes
a few seconds: it imports torch); ``show, whole command`` is the wall time of
``python -m nectarloss.cli show LOG`` from start to exit. Memory is the process's
peak RSS (``getrusage``) and that peak minus the RSS after the imports.

``--src DIR`` imports nectarloss from ``DIR`` instead, to measure an older version
(``git archive <commit> nectarloss | tar -x -C DIR``). The log file is written once
to ``--log`` (kept) or to a temporary directory (removed).

Run: ``python -m benchmarks.read_log [--values 10000000] [--quick] [--src DIR]``.
Run by hand; tests never call it.
"""

# ruff: noqa: E402
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson
import torch

from benchmarks.common import Row, add_common_args, report
from nectarloss.log import LOG_FORMAT, LOG_VERSION

NAME = "read_log"
NAMES = ("G_GAN", "G_L1", "D_real", "D_fake")
CASES = ("read_log", "summarize_log", "show", "plot", "export")
REPO = Path(__file__).resolve().parents[1]
NAN_EVERY = 100_003  # about one NaN per 100k values of D_fake

_CHILD = r"""
import contextlib, io, json, os, resource, sys, time
case, log, out = sys.argv[1:4]
import nectarloss.cli
from nectarloss.log import read_log, summarize_log
if case == "plot":
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print(json.dumps({"skipped": "matplotlib is not installed"}))
        sys.exit(0)
    import nectarloss.plot  # noqa: F401

def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

base = rss()
start = time.perf_counter()
if case == "read_log":
    log_ = read_log(log)
    count = sum(len(s.values) for s in log_.losses.values())
elif case == "summarize_log":
    count = int(sum(r["count"] for r in summarize_log(read_log(log)).values()))
else:
    argv = {"show": ["show", log], "plot": ["plot", log, "-o", out],
            "export": ["export", log, "-o", out]}[case]
    with contextlib.redirect_stdout(io.StringIO()):
        code = nectarloss.cli.main(argv)
    if code:
        raise SystemExit(f"nectarloss {case} exited with {code}")
    count = None
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": seconds, "peak": peak, "base": base, "count": count,
                  "module": nectarloss.cli.__file__}))
"""


def write_log(path: Path, num_values: int, chunk: int) -> int:
    """Write a log of ``num_values`` values over the four losses; returns its size in bytes."""
    rng = random.Random(0)
    num_steps = num_values // len(NAMES)
    header = {
        "kind": "header",
        "format": LOG_FORMAT,
        "version": LOG_VERSION,
        "created": datetime.now(timezone.utc).isoformat(),
        "losses": {
            "G_GAN": {"tags": ["G"], "weight": 1.0, "schedule": None, "modifiers": []},
            "G_L1": {"tags": ["G"], "weight": 100.0, "schedule": None, "modifiers": []},
            "D_real": {
                "tags": ["D"],
                "weight": 1.0,
                "schedule": {"schedule": "linear", "initial_value": 1.0, "target_value": 0.1},
                "modifiers": [],
            },
            "D_fake": {"tags": ["D"], "weight": 0.5, "schedule": None, "modifiers": []},
        },
    }
    with path.open("wb") as fh:
        fh.write(orjson.dumps(header) + b"\n")
        for start in range(0, num_steps, chunk):
            steps = list(range(start, min(start + chunk, num_steps)))
            for k, name in enumerate(NAMES):
                scale = 0.05 + 1.0 / (1.0 + k + start / 50_000)
                values: list[Any] = [scale * (0.5 + rng.random()) for _ in steps]
                if name == "D_fake":
                    for i, step in enumerate(steps):
                        if step % NAN_EVERY == 0:
                            values[i] = "NaN"
                if name == "D_real":
                    weights = [1.0 - 0.9 * min(s // 1000 / 1000, 1.0) for s in steps]
                else:
                    weights = [header["losses"][name]["weight"]] * len(steps)  # type: ignore[index]
                line = {"kind": "chunk", "loss": name, "steps": steps, "values": values}
                line["weights"] = weights
                fh.write(orjson.dumps(line) + b"\n")
    return path.stat().st_size


def run_case(
    case: str, log: Path, workdir: Path, src: Path | None, timeout: float
) -> dict[str, Any]:
    """One measurement in a fresh process (cwd outside the repo, so ``src`` wins)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (src, REPO) if p is not None) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    out = workdir / ("graph.png" if case == "plot" else "export.json")
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, case, str(log), str(out)],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["?"]
        return {"error": f"exit {done.returncode}: {tail[0]}"}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def whole_command(log: Path, workdir: Path, src: Path | None, timeout: float) -> dict[str, Any]:
    """Wall time of ``python -m nectarloss.cli show LOG``, start-up and imports included."""
    env = dict(os.environ)
    first = str(src) if src is not None else str(REPO)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [first, env.get("PYTHONPATH")]))
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "nectarloss.cli", "show", str(log)],
            cwd=workdir,
            env=env,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}"}
    return {"seconds": seconds}


def _mb(n: float) -> str:
    return f"{n / 1e6:.0f} MB"


def rows(result: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    size = result["log_bytes"]
    for case in CASES:
        r = result["cases"][case]
        measure = f"{case}, {result['num_values']:,} values, {_mb(size)} log"
        if "skipped" in r or "error" in r:
            out.append(Row("11", measure, r.get("skipped") or r["error"], "", "", "", None))
            continue
        ours = f"{r['seconds']:.2f} s, peak {_mb(r['peak'])} (+{_mb(r['peak'] - r['base'])})"
        out.append(Row("11", measure, ours, "", f"best of {r['repeats']}", "", None))
    whole = result["whole_show"]
    text = whole.get("skipped") or whole.get("error") or f"{whole['seconds']:.2f} s"
    out.append(Row("11", "show, whole command (start-up + imports)", text, "", "", "", None))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__))
    parser.add_argument("--values", type=int, default=None, help="values in the log (1e7)")
    parser.add_argument("--chunk", type=int, default=1000, help="steps per chunk line (1000)")
    parser.add_argument("--log", type=Path, default=None, help="write/keep the log here")
    parser.add_argument("--src", type=Path, default=None, help="import nectarloss from DIR")
    parser.add_argument("--only", default=None, help=f"comma-separated subset of {CASES}")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per process")
    args = parser.parse_args(argv)
    device = torch.device("cpu")
    num_values = args.values or (1_000_000 if args.quick else 10_000_000)
    repeats = args.repeats or (1 if args.quick else 3)
    cases = CASES if args.only is None else tuple(args.only.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        log = args.log or workdir / "loss_log.jsonl"
        expected = num_values // len(NAMES) * len(NAMES)
        if args.log is None or not log.exists():
            start = time.perf_counter()
            size = write_log(log, num_values, args.chunk)
            print(f"wrote {log} ({_mb(size)}) in {time.perf_counter() - start:.1f} s")
        size = log.stat().st_size
        results: dict[str, dict[str, Any]] = {}
        for case in CASES:
            if case not in cases:
                results[case] = {"skipped": "not selected"}
                continue
            runs = [run_case(case, log, workdir, args.src, args.timeout) for _ in range(repeats)]
            good = [r for r in runs if "seconds" in r]
            if not good:
                results[case] = runs[0]
                continue
            best = min(good, key=lambda r: r["seconds"])
            count = best.get("count")
            if count is not None and count != expected:
                raise SystemExit(f"{case}: read {count} values, expected {expected}")
            results[case] = best | {
                "repeats": len(good),
                "peak": max(r["peak"] for r in good),
            }
            print(f"  {case}: {best['seconds']:.2f} s, peak {_mb(results[case]['peak'])}")
        whole_show: dict[str, Any] = {"skipped": "not selected"}
        if "show" in cases:
            whole = [whole_command(log, workdir, args.src, args.timeout) for _ in range(repeats)]
            timed = [w for w in whole if "seconds" in w]
            whole_show = min(timed, key=lambda w: w["seconds"]) if timed else whole[0]
    payload = {
        "num_values": expected,
        "log_bytes": size,
        "chunk": args.chunk,
        "src": None if args.src is None else str(args.src),
        "cases": results,
        "whole_show": whole_show,
        "notes": [
            "each case in a fresh process; time excludes start-up and imports; "
            "peak RSS (+ growth over the RSS after imports)"
        ],
    }
    report(NAME, device, args, payload, rows(payload))


if __name__ == "__main__":
    main()

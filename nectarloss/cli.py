"""The ``nectarloss`` command line: demo, validate, schema, show, plot, export, watch.

Errors are reported on one line on stderr with exit code 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson

from nectarloss import __version__
from nectarloss.errors import CliError

__all__ = ["CliError", "build_parser", "main"]

_log = logging.getLogger("nectarloss")


def _cmd_demo(args: argparse.Namespace) -> int:
    from nectarloss.demo import load_demo_config, run_demo

    config = load_demo_config(args.config)
    overrides = {
        key: value
        for key, value in (
            ("epochs", args.epochs),
            ("device", args.device),
            ("experiment_dir", args.out),
            ("steps_per_epoch", args.steps),
            ("spec", args.spec),
        )
        if value is not None
    }
    run_demo(
        config.model_copy(update=overrides) if overrides else config,
        tensorboard=True if args.tensorboard == "" else (args.tensorboard or False),
    )
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from nectarloss.console import get_console
    from nectarloss.specs import validate_spec_file

    failed = 0
    for path in args.files:
        try:
            validate_spec_file(path)
        except (ValueError, OSError) as exc:
            failed += 1
            print(f"nectarloss: error: {exc}", file=sys.stderr)
        else:
            get_console().print(f"{path}: ok", markup=False, highlight=False)
    return 2 if failed else 0


def _cmd_schema(args: argparse.Namespace) -> int:
    from nectarloss.specs import spec_json_schema

    sys.stdout.write(orjson.dumps(spec_json_schema(), option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from nectarloss.console import get_console, log_header_text, summary_table
    from nectarloss.log import read_log, summarize_log

    log = read_log(args.log)
    console = get_console()
    console.print(log_header_text(log), markup=False, highlight=False)
    console.print(summary_table(summarize_log(log), title=str(args.log)))
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from nectarloss.plot import plot_log

    out = plot_log(
        args.log, args.output, group_by=args.by, log_scale=args.log_scale, smooth=args.smooth
    )
    print(out)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from nectarloss.log import export_nectargan, read_log

    log = read_log(args.log)
    if args.tensorboard is not None or args.csv is not None:
        from nectarloss.sinks import CSVSink, Sink, TensorBoardSink, replay_log

        sinks: list[Sink] = []
        if args.tensorboard is not None:
            sinks.append(TensorBoardSink(args.tensorboard))
        if args.csv is not None:
            sinks.append(CSVSink(args.csv))
        count = replay_log(log, sinks)
        for target in (args.tensorboard, args.csv):
            if target is not None:
                print(f"{target}: {count} values")
        if args.tensorboard is not None:
            print(f"view it with: tensorboard --logdir {shlex.quote(str(args.tensorboard))}")
    if args.output is not None or (args.tensorboard is None and args.csv is None):
        print(export_nectargan(log, args.output or Path("loss_log.json"), weighted=not args.raw))
    return 0


def _cmd_watch(args: argparse.Namespace) -> int:
    from nectarloss.watch import watch_log

    return watch_log(
        args.log, interval=args.interval, last=args.last, weighted=not args.raw, once=args.once
    )


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``nectarloss`` command."""
    parser = argparse.ArgumentParser(
        prog="nectarloss",
        description="nectarloss: named, weighted, scheduled loss terms for PyTorch.",
    )
    parser.add_argument("--version", action="version", version=f"nectarloss {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="train a small pix2pix on generated image pairs and show its losses",
        description="Train a compact pix2pix (U-Net + PatchGAN) on paired images generated on "
        "the fly, with the objective from specs/pix2pix_basic.json; writes the JSON log, a "
        "loss graph and a sample grid to the experiment directory.",
    )
    demo.add_argument("--config", type=Path, default=None, help="run settings (configs/demo.json)")
    demo.add_argument("--out", type=Path, default=None, help="experiment directory")
    demo.add_argument("--epochs", type=_positive_int, default=None, help="override the epochs")
    demo.add_argument("--steps", type=_positive_int, default=None, help="steps per epoch")
    demo.add_argument("--device", default=None, help="cpu, cuda or auto")
    demo.add_argument(
        "--spec",
        default=None,
        help="the objective: a shipped spec name (pix2pix_adaptive: VQGAN's adaptive weight "
        "on G_GAN) or a JSON spec path",
    )
    demo.add_argument(
        "--tensorboard",
        nargs="?",
        const="",
        default=None,
        metavar="DIR",
        help="also write TensorBoard event files (default DIR: <out>/tensorboard) and print "
        "the tensorboard --logdir command; needs nectarloss[tensorboard]",
    )
    demo.set_defaults(func=_cmd_demo)

    validate = sub.add_parser(
        "validate",
        help="check JSON spec files",
        description="Validate spec files; prints the first error of each and exits 2 on error.",
    )
    validate.add_argument("files", nargs="+", type=Path, metavar="FILE")
    validate.set_defaults(func=_cmd_validate)

    schema = sub.add_parser(
        "schema",
        help="print the JSON Schema of spec files",
        description="Print the JSON Schema of loss spec files, for editors.",
    )
    schema.set_defaults(func=_cmd_schema)

    show = sub.add_parser(
        "show",
        help="statistics of a loss log",
        description="Print the run header and per-loss statistics of a log.",
    )
    show.add_argument("log", type=Path, metavar="LOG")
    show.set_defaults(func=_cmd_show)

    plot = sub.add_parser(
        "plot",
        help="plot a loss log to a PNG",
        description="One panel per tag (or per loss): raw and weighted "
        "values with each loss's weight on a second axis. Needs "
        "nectarloss[plot].",
    )
    plot.add_argument("log", type=Path, metavar="LOG")
    plot.add_argument("-o", "--output", type=Path, default=Path("loss_graph.png"))
    plot.add_argument("--by", choices=("tag", "loss"), default="tag", help="one panel per ...")
    plot.add_argument("--log-scale", action="store_true", help="logarithmic value axis")
    plot.add_argument("--smooth", type=_positive_int, default=1, help="moving-average window")
    plot.set_defaults(func=_cmd_plot)

    export = sub.add_parser(
        "export",
        help="write NectarGAN's loss_log.json, TensorBoard event files or a CSV",
        description="Export a log in NectarGAN's loss_log.json layout (the default, -o), as "
        "TensorBoard event files (--tensorboard DIR, needs nectarloss[tensorboard]) or as "
        "one long-format CSV (--csv FILE: step,loss,raw,weight,weighted).",
    )
    export.add_argument("log", type=Path, metavar="LOG")
    export.add_argument(
        "-o", "--output", type=Path, default=None, help="loss_log.json (the default export)"
    )
    export.add_argument("--raw", action="store_true", help="raw instead of weighted values")
    export.add_argument("--tensorboard", type=Path, metavar="DIR", help="event files here")
    export.add_argument("--csv", type=Path, metavar="FILE", help="a long-format CSV")
    export.set_defaults(func=_cmd_export)

    watch = sub.add_parser(
        "watch",
        help="follow a loss log in the terminal while a run writes it",
        description="A live table per tag (last value, mean and sparkline of the last N "
        "values, minimum, weight), redrawn when the log grows; reads only the new lines. "
        "Ctrl-C quits.",
    )
    watch.add_argument("log", type=Path, metavar="LOG", help="loss_log.jsonl or its directory")
    watch.add_argument(
        "--interval", type=_positive_float, default=1.0, help="seconds between polls"
    )
    watch.add_argument("--last", type=_positive_int, default=100, help="values per mean/sparkline")
    watch.add_argument("--raw", action="store_true", help="raw instead of weighted values")
    watch.add_argument("--once", action="store_true", help="print the tables once and exit")
    watch.set_defaults(func=_cmd_watch)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nectarloss`` console script. Returns the exit code."""
    from rich.logging import RichHandler

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if not _log.handlers:
        _log.addHandler(RichHandler(show_path=False))
        _log.setLevel(logging.INFO)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        print("nectarloss: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, ImportError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"nectarloss: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

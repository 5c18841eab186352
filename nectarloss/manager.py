"""``LossManager``: registers named losses, runs them weighted, records and logs them.

The manager only orchestrates. Curves live in :mod:`nectarloss.schedules`, buffers in
:mod:`nectarloss.records`, the file format in :mod:`nectarloss.log` and rendering in
:mod:`nectarloss.console`.

The per-step path (:meth:`LossManager.compute_loss` and friends) launches device work
only: the raw mean is copied into the loss's device buffer, weights are host floats,
and nothing is read back until a flush or a query.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import torch
from torch import Tensor, nn

from nectarloss.balancing.base import Balancer
from nectarloss.checkpoint import STATE_VERSION, check_state, load_losses
from nectarloss.console import (
    print_line,
)
from nectarloss.errors import (
    NonFiniteLossError,
    UnknownLossError,
)
from nectarloss.log import (
    read_log,
    summarize_log,
)
from nectarloss.modifiers.base import Modifier
from nectarloss.queries import LossQueries
from nectarloss.records import LMHistory, LMLoss, refuse_when_compiling, traced_epoch
from nectarloss.run_log import NonFinitePolicy, RunLog
from nectarloss.schedules import Schedule
from nectarloss.segment import concrete_device
from nectarloss.shutdown import track
from nectarloss.sinks.base import Sink
from nectarloss.validation import (
    check_choice,
    check_count,
    check_epoch,
    check_name,
    check_tags,
    did_you_mean,
)

__all__ = ["LossManager"]

SpecFn = Callable[..., Mapping[str, LMLoss]]


class LossManager(LossQueries):
    """Registers named losses and runs them weighted, recording every value sync-free.

    Args:
        experiment_dir: Directory for ``loss_log.jsonl``. Required when logging is on.
        device: Optional device the registered loss modules and modifiers are moved to.
            Buffers always live on the device of the loss values themselves.
        enable_logging: Keep a history and write it to the log. When ``False`` only the
            latest value of each loss is kept and no file is written.
        history_buffer_size: Values each loss buffers before it is flushed automatically.
        fsync: ``os.fsync`` the log after each flush.
        nonfinite: What a flush does when it finds NaN/Inf values: ``"warn"``
            (:class:`NonFiniteLossWarning`), ``"raise"`` (:class:`NonFiniteLossError`,
            after the values are written) or ``"ignore"``. Either way they are logged
            and counted per loss (:meth:`get_nonfinite_counts`).
        nonfinite_check: ``"flush"`` (default, free) or ``"step"``: check every call
            and raise before a bad value reaches the optimizer. ``"step"`` reads one
            value back per call, so it synchronises with the device.
        check_timesteps: Check on every call that ``timesteps`` lie in each modifier's
            noise table and raise a clear error otherwise. Off by default because it
            reads the timesteps back (a sync); without it out-of-range timesteps are
            clamped to the table.
        resume: Continue the run whose log is already in ``experiment_dir``: each loss's
            step numbers go on from its last logged step (a later
            :meth:`load_state_dict` restores the checkpoint's instead, cutting lines the
            log gained after it). Without ``resume`` or ``overwrite``, a non-empty log
            is refused (:class:`ExistingLogError`), so two runs never share one series.
        overwrite: Empty an existing log and start a new run in it.
        sinks: :class:`~nectarloss.sinks.Sink` s fed every flush's values after the log
            holds them (:meth:`add_sink` adds more). Needs ``enable_logging=True``.

    One run, one writer: a logging manager holds a lock on its log from construction
    until :meth:`close` (the OS drops it if the process dies); a second manager on the
    same directory, in any process, gets :class:`LogInUseError`. A manager may be
    called from several threads: each call's bookkeeping and each flush take a
    short lock, so steps are numbered in the order calls finish and none is lost or
    written twice.

    Under ``torch.distributed`` (DDP) queries are local (``get_loss_values(sync=True)``,
    on every rank, averages over the ranks that computed each loss) and the flush is the
    one collective: call :meth:`update_loss_log` or :meth:`close` on every rank, with the
    same losses registered, before the process group is destroyed. Each loss is averaged
    over the ranks that computed it and rank 0 writes; ranks holding different steps of
    a loss all raise :class:`~nectarloss.RankMismatchError` and keep their values. A full
    buffer is not flushed inside ``compute_loss`` under DDP; it grows until your flush.

    A logging manager is flushed by :meth:`close`, on ``with`` exit and at interpreter
    exit; on SIGTERM only if the application opts in with
    :func:`nectarloss.flush_on_sigterm`.

    Example:
        >>> lm = LossManager(enable_logging=False)
        >>> _ = lm.register_loss_fn("G_L1", nn.L1Loss(), loss_weight=100.0, tags=["G"])
        >>> x, y = torch.zeros(2, 3), torch.ones(2, 3)
        >>> lm.compute_loss_xy("G_L1", x, y, epoch=0)
        tensor(100.)
        >>> lm.get_loss_values(query=["G"])
        {'G_L1': 100.0}
    """

    def __init__(
        self,
        experiment_dir: str | os.PathLike[str] | None = None,
        device: str | torch.device | None = None,
        enable_logging: bool = True,
        history_buffer_size: int = 50_000,
        fsync: bool = False,
        nonfinite: NonFinitePolicy = "warn",
        nonfinite_check: Literal["flush", "step"] = "flush",
        check_timesteps: bool = False,
        resume: bool = False,
        overwrite: bool = False,
        sinks: Sequence[Sink] = (),
    ) -> None:
        if resume and overwrite:
            raise ValueError(
                "LossManager: `resume` and `overwrite` exclude each other; pass at most one."
            )
        self._nonfinite = check_choice("nonfinite", nonfinite, ("warn", "raise", "ignore"))
        check_choice("nonfinite_check", nonfinite_check, ("flush", "step"))
        self.check_every_step = nonfinite_check == "step"
        self.check_timesteps = bool(check_timesteps)
        self.device = concrete_device(device) if device is not None else None
        self.enable_logging = bool(enable_logging)
        self._buffer_size = self._checked_buffer_size(history_buffer_size)
        #: Serialises each call's bookkeeping and each flush (re-entrant, so a signal
        #: handler that flushes inside a flush on the same thread does not deadlock).
        self._lock = threading.RLock()
        self._losses: dict[str, LMLoss] = {}
        #: Per loss name, the balancers that read its weighted output (AdaptiveWeight).
        self._watchers: dict[str, list[Balancer]] = {}
        self._epoch: int | float = 0
        self.experiment_dir: Path | None = None
        self._log: RunLog | None = None
        sinks = self._checked_sinks(sinks)
        if sinks and not self.enable_logging:
            raise ValueError(
                "LossManager: `sinks` expected enable_logging=True (sinks are fed by the "
                f"log's flushes), got {len(sinks)} sink(s) with enable_logging=False."
            )
        if self.enable_logging:
            if experiment_dir is None:
                raise ValueError(
                    "LossManager: `experiment_dir` expected a directory path when "
                    "enable_logging=True, got None (pass enable_logging=False to keep no log)."
                )
            self.experiment_dir = Path(experiment_dir)
            mode: Literal["new", "resume", "overwrite"] = (
                "resume" if resume else ("overwrite" if overwrite else "new")
            )
            self._log = RunLog(self.experiment_dir, self._lock, fsync, nonfinite, mode, sinks)
            track(self)

    def _checked_sinks(self, sinks: object) -> list[Sink]:
        if isinstance(sinks, Sink) or not isinstance(sinks, (list, tuple)):
            raise TypeError(
                f"LossManager: `sinks` expected a list of nectarloss.sinks.Sink, got "
                f"{type(sinks).__name__}."
            )
        for sink in sinks:
            if not isinstance(sink, Sink):
                raise TypeError(
                    "LossManager: `sinks` expected nectarloss.sinks.Sink instances, got "
                    f"{type(sink).__name__}."
                )
        if len({id(s) for s in sinks}) != len(sinks):
            raise ValueError("LossManager: `sinks` expected distinct sinks, got one twice.")
        return list(sinks)

    @property
    def sinks(self) -> tuple[Sink, ...]:
        """The sinks fed by each flush (one that raised is no longer among them)."""
        return () if self._log is None else tuple(self._log.sinks)

    def add_sink(self, sink: Sink) -> Sink:
        """Feed ``sink`` every later flush's values, after the log holds them.

        Returns:
            ``sink``.

        Raises:
            TypeError: ``sink`` is not a :class:`~nectarloss.sinks.Sink`.
            ValueError: The manager keeps no log, or ``sink`` was added already.
        """
        checked = self._checked_sinks([sink])[0]
        with self._lock:
            log = self._log
            if log is None:
                raise ValueError("LossManager: add_sink expected enable_logging=True, got False.")
            if any(s is checked for s in log.sinks):
                raise ValueError(f"LossManager: `sink` {checked.name} was added already.")
            log.sinks.append(checked)
        return checked

    def remove_sink(self, sink: Sink) -> Sink:
        """Stop feeding ``sink`` and close it; values still buffered never reach it.

        Call :meth:`update_loss_log` first for the sink to get them.

        Returns:
            ``sink``.

        Raises:
            TypeError: ``sink`` is not a :class:`~nectarloss.sinks.Sink`.
            ValueError: ``sink`` is not among :attr:`sinks`.
        """
        checked = self._checked_sinks([sink])[0]
        with self._lock:
            log = self._log
            if log is None or not any(s is checked for s in log.sinks):
                raise ValueError(f"LossManager: `sink` {checked.name} is not among the sinks.")
            log.remove_sink(checked)
        return checked

    @property
    def nonfinite(self) -> NonFinitePolicy:
        """What a flush does with NaN/Inf values: ``"warn"``, ``"raise"`` or ``"ignore"``."""
        return self._nonfinite

    @nonfinite.setter
    def nonfinite(self, policy: NonFinitePolicy) -> None:
        self._nonfinite = check_choice("nonfinite", policy, ("warn", "raise", "ignore"))
        if self._log is not None:
            self._log.nonfinite = self._nonfinite

    @staticmethod
    def _checked_buffer_size(size: object) -> int:
        return check_count("LossManager", "history_buffer_size", size, LMHistory.MAX_CAPACITY)

    @property
    def history_buffer_size(self) -> int:
        """Values each loss buffers before it is flushed automatically.

        Setting it applies to every loss, registered or not, from its next call (a
        buffer already holding that many values is flushed at its next call).
        """
        return self._buffer_size

    @history_buffer_size.setter
    def history_buffer_size(self, size: int) -> None:
        size = self._checked_buffer_size(size)
        with self._lock:
            self._buffer_size = size
            for entry in self._losses.values():
                entry.history.set_capacity(self._capacity)

    @property
    def _capacity(self) -> int:
        """Each history's capacity: the buffer size, or 1 (the latest value) without a log."""
        return self._buffer_size if self.enable_logging else 1

    # ------------------------------------------------------------------ registration
    @property
    def log_path(self) -> Path | None:
        """Path of the JSON Lines log, or ``None`` when logging is off."""
        return None if self._log is None else self._log.path

    def register_loss_fn(
        self,
        loss_name: str,
        loss_fn: Callable[..., Any],
        loss_weight: float = 1.0,
        schedule: Schedule | None = None,
        tags: Sequence[str] | None = None,
        modifiers: Sequence[Modifier] | None = None,
        balancer: Balancer | None = None,
    ) -> LMLoss:
        """Register a loss under a unique name.

        Args:
            loss_name: Unique name (``"G_L1"``); no path separators or control characters.
            loss_fn: A loss module or callable returning a Tensor.
            loss_weight: Constant weight (used when ``schedule`` is ``None``).
            schedule: Optional weight schedule; it then defines the weight.
            tags: Lookup tags for queries.
            modifiers: Per-sample modifiers, applied in order. The loss must then
                return a per-element loss (construct it with ``reduction='none'``).
            balancer: An adaptive weight source (:mod:`nectarloss.balancing`); the
                weight applied is ``loss_weight`` (or the schedule's value) times its
                factor. Pass the same instance to several losses to balance them as a
                group.

        Returns:
            The registered :class:`LMLoss`.

        Raises:
            ValueError: Duplicate name, bad name, or a negative / non-finite weight.
            TypeError: ``loss_fn`` not callable, or a wrong type for another argument.
        """
        entry = LMLoss(
            name=check_name(loss_name),
            function=loss_fn,
            loss_weight=loss_weight,
            schedule=schedule,
            tags=check_tags(str(loss_name), tags),
            modifiers=[modifiers] if isinstance(modifiers, Modifier) else list(modifiers or ()),
            balancer=balancer,
        )
        self._register(entry)
        return entry

    def _validated(self, entry: LMLoss) -> LMLoss:
        if entry.name in self._losses:
            raise ValueError(f"LossManager: a loss named {entry.name!r} is already registered.")
        return entry.validated()

    def _register(self, entry: LMLoss) -> None:
        self._validated(entry)
        next_step = None if self._log is None else self._log.next_steps.get(entry.name)
        entry.prepare(
            self._capacity,
            self.device,
            first_step=next_step or 0,
            keep_latest=not self.enable_logging,
        )
        balancer = entry.balancer
        if balancer is not None:
            balancer.bind(entry.name)
        self._losses[entry.name] = entry
        if balancer is not None:
            for reference in balancer.references:
                watchers = self._watchers.setdefault(reference, [])
                if balancer not in watchers:
                    watchers.append(balancer)

    def remove_loss(self, loss_name: str) -> LMLoss:
        """Write a loss's buffered values to the log, then unregister it.

        A loss registered again under the same name continues its series: its steps go
        on from the removed one's, so the log never holds a step twice. Under DDP call
        it on every rank (it flushes).

        Returns:
            The removed :class:`LMLoss`.

        Raises:
            KeyError: No loss has that name.
            LogWriteError: The flush failed; the loss stays registered, nothing is lost.
        """
        entry = self._entry(loss_name)
        with self._lock:
            self._flush([entry])
            del self._losses[loss_name]
            balancer = entry.balancer
            if balancer is not None:
                balancer.unbind(loss_name)
                if not balancer.members:
                    for watchers in self._watchers.values():
                        if balancer in watchers:
                            watchers.remove(balancer)
            if self._log is not None:
                self._log.next_steps[loss_name] = entry.num_steps
        return entry

    def init_from_spec(
        self, spec: SpecFn | str | os.PathLike[str], *args: Any, **kwargs: Any
    ) -> dict[str, LMLoss]:
        """Register every loss of a spec.

        A spec is a callable returning ``dict[str, LMLoss]``, called as
        ``spec(*args, **kwargs)``, or a JSON spec file: a path or a shipped spec's name
        (``"pix2pix_basic"``), loaded with :func:`nectarloss.specs.load_spec` (``kwargs``
        may hold ``allow_imports=True``). All entries are checked before any is
        registered, so a bad spec registers nothing.

        Returns:
            The registered losses by name.

        Raises:
            SpecError: A JSON spec is invalid (the message names the file and JSON path).
            ValueError: A name is already registered or an entry is invalid.
            TypeError: ``spec`` is neither a callable nor a path, or returns a non-dict.
        """
        if isinstance(spec, (str, os.PathLike)):
            from nectarloss.specs import load_spec

            return self._register_all(load_spec(spec, *args, **kwargs), owner=str(spec))
        if not callable(spec):
            raise TypeError(
                "LossManager: `spec` expected a callable returning dict[str, LMLoss], a JSON "
                f"spec path or a shipped spec name, got {type(spec).__name__}."
            )
        return self._register_all(spec(*args, **kwargs), owner=getattr(spec, "__name__", "spec"))

    def _register_all(self, result: object, owner: str) -> dict[str, LMLoss]:
        entries = LMLoss.from_spec_result(result, owner)
        for entry in entries:
            self._validated(entry)
        for entry in entries:
            self._register(entry)
        return {e.name: e for e in entries}

    # ------------------------------------------------------------------ per-step path
    def compute_loss(
        self,
        loss_name: str,
        *inputs: Any,
        epoch: int | None = None,
        timesteps: Tensor | None = None,
        **context: Any,
    ) -> Tensor:
        """Run a registered loss on any number of inputs and return it weighted.

        Args:
            loss_name: The registered name.
            *inputs: The loss inputs (prediction first, then target, or e.g. anchor,
                positive, negative for a triplet loss).
            epoch: Current epoch for epoch-driven schedules. When omitted the latest
                epoch passed to any call is used (0 at first).
            timesteps: Diffusion timesteps ``[B]`` for modifiers that need them (ignored by
                a loss without modifiers, so one training loop serves every weighting).
            **context: Anything else the loss's modifiers read (e.g. ``mask``).

        Returns:
            The weighted loss; the autograd graph is intact.

        Raises:
            KeyError: Unknown ``loss_name`` (the message lists the registered names).
            TypeError: The loss returned something other than a Tensor, context
                keywords were given to a loss without modifiers, or ``epoch`` is not a
                number.
            ValueError: Inputs nectarloss checks are wrong (count, shapes of an
                element-wise catalog loss, devices), or ``epoch`` is NaN or negative.
            LogWriteError: The automatic flush of a full buffer failed; every value,
                this call's included, is kept.

        An exception raised by the loss function itself (or a schedule callable)
        propagates with its own type (``torch.OutOfMemoryError`` stays an OOM), with a
        note naming the loss and the input shapes. An empty batch (``B == 0``) through
        modifiers gives a zero that stays in the graph, recorded as 0.
        """
        entry = self._losses.get(loss_name) or self._entry(loss_name)
        return self._run(entry, inputs, epoch, timesteps, context)

    def _run(
        self,
        entry: LMLoss,
        inputs: tuple[Any, ...],
        epoch: int | None,
        timesteps: Tensor | None,
        context: dict[str, Any],
        weight: float | None = None,
    ) -> Tensor:
        """One call: :meth:`LMLoss.run` records it, then a full buffer is flushed.

        The value is recorded before anything that can fail about earlier steps (the
        automatic flush), so a valid call is never lost. ``weight`` overrides the
        loss's own (see :meth:`LMLoss.run`).
        """
        if torch.compiler.is_compiling():  # no host checks, no host reads: see LMLoss.run
            if epoch is not None:  # checked as in eager (a range guard, not a value guard)
                self._epoch = traced_epoch(entry.name, epoch)  # a store: no guard
            weighted = entry.run(
                inputs, epoch, timesteps, context, lock=contextlib.nullcontext(), weight=weight
            )[0]
            for watcher in self._watchers.get(entry.name, ()):  # for a balanced loss outside
                watcher.observe(entry.name, weighted)  # a store, replayed after the graph
            return weighted
        if epoch is not None:
            self._epoch = check_epoch(entry.name, epoch)
        if entry.balancer is not None:
            self._check_references(entry)
        weighted, raw, step = entry.run(
            inputs,
            self._epoch,
            timesteps,
            context,
            lock=self._lock,
            keep_history=self.enable_logging,
            check_context=self.check_timesteps,
            weight=weight,
        )
        if step < 0:  # recorded on the device (a CUDA graph capture): settled at a flush
            return weighted
        for watcher in self._watchers.get(entry.name, ()):
            watcher.observe(entry.name, weighted)
        if self._log is not None and entry.history.flush_due:
            self._log.flush_full(entry, step, list(self._losses.values()))
        if self.check_every_step and not bool(torch.isfinite(raw).all()):
            raise NonFiniteLossError(
                f"{entry.name}: loss is {float(raw)} at step {step} (epoch {self._epoch}); "
                "the value is recorded and will be logged."
            )
        return weighted

    def compute_loss_xy(
        self, loss_name: str, x: Tensor, y: Tensor, epoch: int | None = None, **context: Any
    ) -> Tensor:
        """Run a two-input loss: ``x`` is the prediction (``y_fake``), ``y`` the target."""
        entry = self._losses.get(loss_name) or self._entry(loss_name)
        timesteps = context.pop("timesteps", None) if context else None
        return self._run(entry, (x, y), epoch, timesteps, context)

    def compute_loss_xyz(
        self,
        loss_name: str,
        x: Tensor,
        y: Tensor,
        z: Tensor,
        epoch: int | None = None,
        **context: Any,
    ) -> Tensor:
        """Run a three-input loss (triplet, margin ranking, cosine embedding)."""
        entry = self._losses.get(loss_name) or self._entry(loss_name)
        timesteps = context.pop("timesteps", None) if context else None
        return self._run(entry, (x, y, z), epoch, timesteps, context)

    # ------------------------------------------------------------------ balancing
    def _check_references(self, entry: LMLoss) -> None:
        """Raise ``UnknownLossError`` if a loss the balancer reads is not registered."""
        balancer = entry.balancer
        for reference in () if balancer is None else balancer.references:
            if reference not in self._losses:
                known = list(self._losses)
                raise UnknownLossError(
                    f"{entry.name}: {type(balancer).__name__} `reference` {reference!r} is not "
                    f"registered{did_you_mean(reference, known)}; registered losses: {known}."
                )

    @property
    def balancers(self) -> list[Balancer]:
        """The distinct balancers attached to registered losses, in registration order."""
        out: list[Balancer] = []
        for entry in self._losses.values():
            if entry.balancer is not None and all(b is not entry.balancer for b in out):
                out.append(entry.balancer)
        return out

    def balance_step(self) -> None:
        """Let every balancer update itself from this step's calls (:class:`GradNorm`).

        Call it once per training step, after every balanced loss was computed and
        before ``backward()``. Balancers without an update (all but ``GradNorm``) do
        nothing. No host sync.
        """
        for balancer in self.balancers:
            balancer.step()

    def parameters(self) -> Iterator[nn.Parameter]:
        """Learnable parameters the manager holds, each once.

        The balancers' (such as :class:`UncertaintyWeighting`'s) and the loss modules'
        parameters that require grad.

        Give them to the optimizer next to the model's:
        ``torch.optim.Adam([*model.parameters(), *lm.parameters()])``.
        """
        seen: set[int] = set()
        modules: list[nn.Module] = [*self.balancers]
        modules += [e.function for e in self._losses.values() if isinstance(e.function, nn.Module)]
        for module in modules:
            for parameter in module.parameters():
                if parameter.requires_grad and id(parameter) not in seen:
                    seen.add(id(parameter))
                    yield parameter

    # ------------------------------------------------------------------ log
    def _flush(self, entries: Sequence[LMLoss]) -> int:
        if self._log is None:
            return 0
        return self._log.flush(entries, list(self._losses.values()))

    def get_nonfinite_counts(self) -> dict[str, int]:
        """Number of NaN/Inf values each loss has produced, as found by flushes so far."""
        counts = {} if self._log is None else self._log.nonfinite_counts
        return {name: counts.get(name, 0) for name in self._losses}

    def update_loss_log(self, silent: bool = True, capture: bool = False) -> str | None:
        """Flush every loss's buffered values to the log (one device-to-host copy).

        Args:
            silent: Print nothing. When ``False`` a one-line report is printed...
            capture: ...or returned instead of printed.

        Returns:
            The report when ``silent=False`` and ``capture=True``, else ``None``.

        Raises:
            LogWriteError: The write failed; nothing buffered is lost.
        """
        refuse_when_compiling("LossManager", "update_loss_log")
        start = time.perf_counter()
        count = self._flush(list(self._losses.values())) if self.enable_logging else 0
        if silent:
            return None
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        message = (
            f"Loss log updated: {count} values of {len(self._losses)} losses in {elapsed_ms:.2f} ms"
        )
        if capture:
            return message
        print_line(message)
        return None

    def export_base_log(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Flush, then write the whole log in NectarGAN's ``loss_log.json`` layout.

        Args:
            path: Output file; defaults to ``<experiment_dir>/loss_log.json``.

        Under DDP call it on every rank (it flushes); rank 0 writes the file and every
        rank returns its path.

        Returns:
            The path written.
        """
        if self._log is None or self.experiment_dir is None:
            raise RuntimeError(
                "LossManager: export_base_log needs enable_logging=True and an experiment_dir."
            )
        self._flush(list(self._losses.values()))
        out = Path(path) if path is not None else self.experiment_dir / "loss_log.json"
        return self._log.export_nectargan(out, list(self._losses.values()))

    def _summary_stats(self) -> dict[str, dict[str, float]]:
        """Flush, then the statistics of the whole log (rank 0; other ranks: latest)."""
        self.update_loss_log()
        writer = None if self._log is None else self._log.writer
        if writer is None:
            return super()._summary_stats()
        return summarize_log(read_log(writer.path)) if writer.size else {}

    # ------------------------------------------------------------------ checkpoints
    STATE_VERSION = STATE_VERSION

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume a run.

        Per-loss counters, weights, schedules' current values, modifier and module
        state, unflushed history, and the log position. Only tensors and plain values:
        load it with ``torch.load(..., weights_only=True)``.
        Taking it copies each unflushed buffer to the host once.
        """
        refuse_when_compiling("LossManager", "state_dict")
        with self._lock:  # no call or flush changes the buffers while they are copied
            for entry in self._losses.values():
                entry.settle()
            log = self._log
            return {
                "version": self.STATE_VERSION,
                "epoch": self._epoch,
                "logged_names": [] if log is None else sorted(log.logged_names),
                "log": None if log is None else log.state(),
                "losses": {name: e.state_dict() for name, e in self._losses.items()},
            }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` into a manager with the same losses registered.

        Everything is checked before anything changes, and a failure while applying
        (a module rejecting its state) restores what the manager held, so a failed load
        leaves the manager as it was. When logging, lines the log gained after the
        checkpoint was taken are cut off, so the resumed run writes exactly the lines an
        uninterrupted run would have.

        Raises:
            ValueError: The state is malformed, its losses differ from the registered
                ones, its version is unknown, or the log is not the one it was taken
                with (or its offset does not end a line).
        """
        with self._lock:
            self._load_checked(state)

    def _load_checked(self, state: Mapping[str, Any]) -> None:
        check_state(state, self._losses)
        if self._log is not None:
            self._log.check_position(state.get("log"))
        load_losses(self._losses, state["losses"])
        self._epoch = state["epoch"]
        if self._log is not None:
            self._log.rewind(state.get("log"), state["logged_names"])

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Flush everything buffered, then release the log's lock.

        Called on ``with`` exit and at interpreter exit; calling it again is harmless.
        The manager stays usable: a later flush takes the lock again, and refuses if
        another writer changed the log meanwhile. If the flush fails, the lock is kept
        with the unwritten values. Sinks are closed after the flush (they reopen at the
        next one).
        """
        refuse_when_compiling("LossManager", "close")
        self._flush(list(self._losses.values()))
        if self._log is not None:
            self._log.close_sinks()
            self._log.release()

    def __enter__(self) -> LossManager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ misc
    def to(self, device: str | torch.device) -> LossManager:
        """Move loss modules, modifiers and buffers (with unflushed values) to ``device``."""
        with self._lock:
            self.device = concrete_device(device)
            for e in self._losses.values():
                e.to(self.device)
        return self

    def __repr__(self) -> str:
        log = str(self.log_path) if self.log_path else None
        return f"LossManager(losses={list(self._losses)}, log={log!r})"

"""NectarGAN's ``LossManager`` over a native :class:`nectarloss.LossManager`."""

from __future__ import annotations

import math
import time
import warnings
import weakref
from array import array
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from nectarloss import manager as native_manager
from nectarloss import records
from nectarloss.columns import LogColumn, all_float32, multiply
from nectarloss.compat.nectargan.records import (
    LMLoss,
    logged_weights,
    note_logged_weight,
)
from nectarloss.compat.nectargan.schedules import (
    curve_of,
    is_scheduled,
)
from nectarloss.distributed import is_main_rank
from nectarloss.log import read_log, write_nectargan_json
from nectarloss.transfer import values_to_host

#: Largest ``buffer_size`` (the native history's limit).
_MAX_BUFFER = records.LMHistory.MAX_CAPACITY


def _config_value(config: object, path: str) -> Any:
    """``config.a.b.c`` for ``path="a.b.c"``, or ``None`` where an attribute is missing."""
    value: Any = config
    for part in path.split("."):
        value = getattr(value, part, None)
        if value is None:
            return None
    return value


# ----------------------------------------------------------------------------- manager
#: Per experiment directory, the adapter writing there in this process.
_WRITERS: dict[Path, weakref.ref[LossManager]] = {}


def _hand_over(directory: Path, successor: LossManager) -> None:
    """Close the adapter of this process still writing to ``directory``, if any.

    NectarGAN lets a new manager take over a run's directory while the old one is
    still referenced (the Toolbox starts a new trainer worker that way); the old one
    flushes and lets go, so the new one can take the log. Another process's writer
    still gets :class:`~nectarloss.LogInUseError`.
    """
    key = directory.resolve()
    previous = _WRITERS.get(key)
    holder = None if previous is None else previous()
    if holder is not None and holder is not successor:
        holder.close()
    _WRITERS[key] = weakref.ref(successor)


class LossManager:
    """NectarGAN's ``LossManager``, recording through a native :class:`nectarloss.LossManager`.

    Args:
        config: NectarGAN's ``Config``, or any object with its attributes. Read:
            ``common.device`` (required); ``dataloader.dataroot`` (the log header and
            ``dataset_length``, the entries of ``<dataroot>/train``);
            ``dataloader.load.input_nc`` and ``.crop_size`` (the placeholder
            ``last_loss_map``); ``train.load.continue_train`` (continue the log).
        experiment_dir: Where ``loss_log.jsonl`` and ``loss_log.json`` go.
        enable_logging: Keep histories and write the logs; otherwise keep only the
            latest value of each loss.
        history_buffer_size: Values a loss buffers before they are flushed to
            ``loss_log.jsonl`` (also settable later as :attr:`buffer_size`).

    Raises:
        AttributeError: ``config`` has no ``common.device``.
    """

    def __init__(
        self,
        config: Any,
        experiment_dir: str | Path,
        enable_logging: bool = True,
        history_buffer_size: int = 50_000,
    ) -> None:
        device = _config_value(config, "common.device")
        if device is None:
            raise AttributeError(
                "LossManager: `config` expected NectarGAN's Config or an object with "
                f"`common.device`, got {type(config).__name__} without it."
            )
        self.config = config
        self.device = device
        self.experiment_dir = Path(experiment_dir)
        self.enable_logging = bool(enable_logging)
        continue_train = bool(_config_value(config, "train.load.continue_train"))
        if self.enable_logging:
            _hand_over(self.experiment_dir, self)
        #: The native manager doing the work (its log, checkpoints and summary).
        self.native = native_manager.LossManager(
            self.experiment_dir if self.enable_logging else None,
            device=device,
            enable_logging=self.enable_logging,
            resume=self.enable_logging and continue_train,
            overwrite=self.enable_logging and not continue_train,
        )
        self.buffer_size = history_buffer_size
        #: ``loss_log.json``, once written.
        self.loss_log: Path | None = None
        self.loss_fns: dict[str, LMLoss] = {}
        #: Per loss name, the weights NectarGAN's file shows (see :func:`logged_weights`).
        self._logged: dict[str, list[tuple[int, float]]] = {}
        self._dataset_length: int | None = None
        self.dummy = self._placeholder()
        self.init_from_spec(spec=None)

    def _placeholder(self) -> Tensor:
        """NectarGAN's ``last_loss_map`` before a loss's first call: zeros of an input."""
        channels = _config_value(self.config, "dataloader.load.input_nc")
        size = _config_value(self.config, "dataloader.load.crop_size")
        if isinstance(channels, int) and isinstance(size, int):
            return torch.zeros((1, channels, size, size))
        return torch.empty(0)

    @property
    def buffer_size(self) -> int:
        """Values each loss buffers before an automatic flush; settable at any time."""
        return self.native.history_buffer_size

    @buffer_size.setter
    def buffer_size(self, size: float) -> None:
        if isinstance(size, bool) or not isinstance(size, (int, float)) or math.isnan(size):
            raise TypeError(f"LossManager: `buffer_size` expected a number, got {size!r}.")
        # NectarGAN flushes once a history holds >= buffer_size values: 0 keeps one
        self.native.history_buffer_size = max(1, min(math.ceil(size), _MAX_BUFFER))

    # ------------------------------------------------------------------ registration
    def init_from_spec(
        self, spec: Callable[..., Mapping[str, Any]] | None, *args: Any, **kwargs: Any
    ) -> dict[str, LMLoss]:
        """Replace every registered loss with a spec's (``None``: remove them all).

        ``spec(*args, **kwargs)`` returns ``{name: LMLoss}``; NectarGAN's own ``LMLoss``
        objects are converted. Buffered values of the losses replaced are written to
        the log first, and a loss registered again continues its series.

        Returns:
            The registered losses (``loss_fns``).

        Raises:
            RuntimeError: The spec's result is not ``{name: LMLoss}`` (as NectarGAN);
                nothing changes. Exceptions raised by the spec itself keep their type.
        """
        if spec is None:
            entries: dict[str, LMLoss] = {}
        else:
            result = spec(*args, **kwargs)
            owner = f"LossManager.init_from_spec({getattr(spec, '__name__', 'spec')})"
            try:
                if not isinstance(result, Mapping):
                    raise TypeError(f"expected dict[str, LMLoss], got {type(result).__name__}")
                entries = {str(k): LMLoss.adopt(v, f"entry {k!r}") for k, v in result.items()}
                natives = [self._native_entry(name, e) for name, e in entries.items()]
            except (TypeError, ValueError, KeyError) as exc:
                raise RuntimeError(
                    f"{owner}: unable to initialize from the spec: {exc} "
                    "(spec functions must return dict[str, LMLoss])."
                ) from exc
        for name in list(self.native.get_registered_losses()):
            self.native.remove_loss(name)  # writes its values first
        for old in self.loss_fns.values():
            old._native = None
        self.loss_fns = {}
        if spec is not None:
            self.native.init_from_spec(lambda: {n.name: n for n in natives})
            for (name, entry), native in zip(entries.items(), natives, strict=True):
                self._bind(name, entry, native)
                entry.last_loss_map = self.dummy.clone()
        return self.loss_fns

    def register_loss_fn(
        self,
        loss_name: str,
        loss_fn: Callable[..., Any],
        loss_weight: float = 1.0,
        schedule: Any = None,
        tags: list[str] | None = None,
    ) -> None:
        """Register a loss (NectarGAN's signature; each gets its own default schedule).

        Raises:
            ValueError: The name is in use, or breaks nectarloss's naming rule.
            TypeError: ``loss_fn`` is not callable, or ``schedule`` lacks a field.
            KeyError: The schedule names a curve other than linear or exponential.
        """
        if loss_name in self.loss_fns:
            raise ValueError(f"Loss function name already in use: {loss_name}")
        if isinstance(loss_fn, nn.Module):
            loss_fn = loss_fn.to(self.device)
        entry = LMLoss(
            loss_name,
            loss_fn,
            loss_weight,
            schedule,
            last_loss_map=self.dummy.clone(),
            tags=[] if tags is None else tags,
        )
        self._register(loss_name, entry)

    def _register(self, name: str, entry: LMLoss) -> records.LMLoss:
        """Register ``entry`` natively (replacing a native loss of that name) and bind it."""
        native = self._native_entry(name, entry)
        if name in self.native:  # dropped from `loss_fns` by hand, or replaced there
            self.native.remove_loss(name)  # writes its values first
        self.native.init_from_spec(lambda: {name: native})
        self._bind(name, entry, native)
        return native

    def _native_entry(self, name: str, entry: LMLoss) -> records.LMLoss:
        """A checked native entry for ``entry`` (weights come from ``entry`` per call)."""
        if is_scheduled(entry.schedule):
            curve_of(entry.schedule, name)  # an unknown curve fails now, not at a call
        tags = entry.tags
        native = records.LMLoss(
            name=name,
            function=entry.function,
            loss_weight=max(float(entry.loss_weight), 0.0),  # the header's; never applied
            tags=[tags] if isinstance(tags, str) else list(tags),
            check_inputs=False,  # torch's own input rules, as NectarGAN
        ).validated()
        return native

    def _bind(self, name: str, entry: LMLoss, native: records.LMLoss) -> None:
        entry._native = native
        changes = self._logged.setdefault(name, [])
        note_logged_weight(changes, native.num_steps, entry.loss_weight)
        entry._logged = changes
        self.loss_fns[name] = entry

    # ------------------------------------------------------------------ per-step path
    def compute_loss_xy(
        self,
        loss_name: str,
        x: Any,
        y: Any,
        epoch: int = 0,
        loss_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Tensor:
        """Run a loss on ``x`` (prediction) and ``y`` (target); return it weighted.

        ``loss_kwargs={"weight_kwargs": {...}}`` goes to the schedule's curve (e.g.
        ``epsilon`` for ``exponential``). Never syncs.

        Raises:
            KeyError: No loss has that name.
        """
        return self._compute(loss_name, (x, y), epoch, loss_kwargs)

    def compute_loss_xyz(
        self,
        loss_name: str,
        x: Any,
        y: Any,
        z: Any,
        epoch: int = 0,
        loss_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Tensor:
        """:meth:`compute_loss_xy` for a three-input loss (triplet, margin ranking)."""
        return self._compute(loss_name, (x, y, z), epoch, loss_kwargs)

    def _compute(
        self,
        loss_name: str,
        inputs: tuple[Any, ...],
        epoch: int,
        loss_kwargs: Mapping[str, Mapping[str, Any]] | None,
    ) -> Tensor:
        entry = self.loss_fns.get(loss_name)
        if entry is None:
            raise KeyError(
                f"Invalid loss type: {loss_name!r}. Valid types are: {list(self.loss_fns)}"
            )
        native = entry._native if type(entry) is LMLoss else None
        if native is None:  # written into `loss_fns` directly: register it now
            entry = self._adopted(loss_name, entry)
            native = self._register(loss_name, entry)
        if torch.compiler.is_compiling() and is_scheduled(entry.schedule):
            raise RuntimeError(
                f"{loss_name}: NectarGAN's schedules compute the weight on the host, so a "
                "scheduled loss cannot run in a compiled step; compute it outside the "
                "compiled region, or use nectarloss.LossManager, whose schedules compile."
            )
        weight_kwargs = loss_kwargs.get("weight_kwargs", {}) if loss_kwargs else {}
        weight = entry.weight_at(epoch, **weight_kwargs)
        note_logged_weight(entry._logged, native.num_steps, entry.loss_weight)
        # The adapter's one hook into the native per-step path: the weight is ours, and
        # the epoch is NectarGAN's business (any number its curves take).
        return self.native._run(native, inputs, None, None, {}, weight=weight)

    def _adopted(self, name: str, entry: object) -> LMLoss:
        """``entry`` as one of ours (NectarGAN's own is converted and put in its place)."""
        if type(entry) is LMLoss:
            return entry
        adopted = LMLoss.adopt(entry, f"loss_fns[{name!r}]")
        self.loss_fns[name] = adopted
        return adopted

    # ------------------------------------------------------------------ queries
    def _select(self, query: Sequence[str] | None) -> dict[str, LMLoss]:
        """Losses with a tag in ``query`` (NectarGAN matches tags only), or all."""
        return {
            name: self._adopted(name, e)
            for name, e in list(self.loss_fns.items())
            if query is None or any(tag in e.tags for tag in query)
        }

    def get_registered_losses(
        self, query: Sequence[str] | None = None, strip: bool = True
    ) -> dict[str, LMLoss]:
        """Copies of the losses with a tag in ``query`` (``strip``: without history)."""
        return {name: e.snapshot(strip) for name, e in self._select(query).items()}

    def get_loss_values(
        self, query: Sequence[str] | None = None, precision: int = 2
    ) -> dict[str, float]:
        """Latest weighted value of each selected loss, rounded (one host copy)."""
        selected = self._select(query)
        weighted: list[Tensor | None] = []
        for e in selected.values():
            n = e._native
            if n is None or n.last_value is None or n.last_weight is None:
                weighted.append(None)
            else:  # NectarGAN's (loss * weight).item(): the same torch op, the same bits
                weighted.append(n.last_value * n.last_weight)
        host = values_to_host(list(selected), weighted, [1.0] * len(weighted))
        return {name: round(v, precision) for name, v in zip(selected, host, strict=True)}

    def get_loss_tensors(self, query: Sequence[str] | None = None) -> dict[str, Tensor]:
        """Weighted output of each selected loss's latest call, on the CPU."""
        return {name: e.last_loss_map for name, e in self._select(query).items()}

    def get_loss_weights(
        self, query: Sequence[str] | None = None, precision: int = 2
    ) -> dict[str, float]:
        """Each selected loss's ``schedule.current_value`` (the latest weight), rounded."""
        return {
            name: round(float(e.schedule.current_value), precision)
            for name, e in self._select(query).items()
        }

    def print_losses(
        self, epoch: int, iter: int, precision: int = 2, capture: bool = False
    ) -> str | None:
        """Print (or return) ``"(epoch: e, iters: i) Loss: name: value ..."``."""
        values = self.get_loss_values(precision=precision)
        text = f"(epoch: {epoch}, iters: {iter}) Loss:" + "".join(
            f" {name}: {value}" for name, value in values.items()
        )
        if capture:
            return text
        print(text)
        return None

    def print_weights(self, precision: int = 2, capture: bool = False) -> str | None:
        """Print (or return) ``"Loss weights: name: weight ..."``."""
        weights = self.get_loss_weights(precision=precision)
        text = "Loss weights:" + "".join(f" {name}: {w}" for name, w in weights.items())
        if capture:
            return text
        print(text)
        return None

    # ------------------------------------------------------------------ logs
    def _bypassed(self, method: str) -> bool:
        if self.enable_logging:
            return False
        warnings.warn(
            f"Call to LossManager.{method}() with `enable_logging=False`. Bypassing.",
            stacklevel=3,
        )
        return True

    def update_loss_log(self, silent: bool = True, capture: bool = False) -> str | None:
        """Flush every loss to ``loss_log.jsonl``, then rewrite ``loss_log.json``.

        Returns:
            With ``silent=False`` and ``capture=True``, NectarGAN's timing message.
        """
        if self._bypassed("update_loss_log"):
            return None
        start = time.perf_counter()
        self.native.update_loss_log()
        self._write_json()
        if silent:
            return None
        message = (
            f"LossManager: Logs updated. Time taken: {time.perf_counter() - start:.3f} seconds"
        )
        if capture:
            return message
        print(message)
        return None

    def export_base_log(self) -> None:
        """Write ``loss_log.json`` from the log as it stands (NectarGAN: at the start).

        Raises:
            RuntimeError: The file cannot be written.
        """
        if self._bypassed("export_base_log"):
            return
        self._write_json()

    def _write_json(self) -> None:
        """Rewrite ``<experiment_dir>/loss_log.json`` from ``loss_log.jsonl`` (rank 0)."""
        source = self.native.log_path
        path = self.experiment_dir / "loss_log.json"
        if source is None or not is_main_rank():
            return
        empty: LogColumn[float] = LogColumn(array("d"))
        columns: dict[str, tuple[LogColumn[float], LogColumn[float]]] = {}
        if source.exists() and source.stat().st_size:
            log = read_log(source)
            for name in [*log.info, *log.losses]:  # registration order, as NectarGAN
                series = log.losses.get(name)
                if series is None:
                    columns.setdefault(name, (empty, empty))
                    continue
                described = log.info.get(name, {}).get("weight")
                weights = array("d", series.weights)
                self._use_logged_weights(name, series.steps, weights, described)
                loss = multiply(series.values, series.weights, self._dtype_of(name, series))
                columns[name] = (loss, LogColumn(weights))
        for name in self.loss_fns:
            columns.setdefault(name, (empty, empty))
        try:
            write_nectargan_json(path, columns, header=self._header(), nan_tokens=True)
        except OSError as exc:
            raise RuntimeError(f"Unable to save loss log to: {path.as_posix()}") from exc
        self.loss_log = path

    def _dtype_of(self, name: str, series: Any) -> torch.dtype:
        """The dtype the loss computes in: its latest value's, else float32 if it fits."""
        entry = self.loss_fns.get(name)
        native = entry._native if type(entry) is LMLoss else None
        if native is not None and native.last_value is not None:
            return native.last_value.dtype
        return torch.float32 if all_float32(series.values) else torch.float64

    def _use_logged_weights(
        self, name: str, steps: Sequence[int], weights: array[float], described: object
    ) -> None:
        """Put the weights NectarGAN logs (``loss_weight``) in place of applied ones.

        Steps this manager recorded get the ``loss_weight`` of their call; earlier
        ones (a resumed run's) the weight the log's header describes for the loss.
        """
        changes = self._logged.get(name, [])
        ours = bisect_left(steps, changes[0][0]) if changes else len(steps)
        if isinstance(described, (int, float)) and not isinstance(described, bool):
            weights[:ours] = array("d", [float(described)]) * ours
        weights[ours:] = array("d", logged_weights(changes, steps[ours:]))

    def _header(self) -> dict[str, Any]:
        """NectarGAN's header fields: device, dataroot, dataset_length, experiment."""
        dataroot = _config_value(self.config, "dataloader.dataroot")
        if self._dataset_length is None:
            train = None if dataroot is None else Path(dataroot, "train")
            if train is not None and train.is_dir():
                self._dataset_length = sum(1 for _ in train.iterdir())
            else:
                where = "config has no dataloader.dataroot" if train is None else f"no {train}"
                warnings.warn(
                    f"LossManager: {where} to count the log's `dataset_length` from; writing 0.",
                    stacklevel=4,
                )
                self._dataset_length = 0
        return {
            "device": f"{self.device}",
            "dataroot": f"{dataroot}",
            "dataset_length": self._dataset_length,
            "experiment": f"{self.experiment_dir.name}",
        }

    def close(self) -> None:
        """Flush, rewrite ``loss_log.json`` and release the log (not in NectarGAN)."""
        if self.enable_logging:
            self.native.update_loss_log()
            self._write_json()
        self.native.close()

    def __repr__(self) -> str:
        return f"nectargan.LossManager(losses={list(self.loss_fns)}, native={self.native!r})"

"""``LMLoss``: one registered loss, its run state, and the per-step path.

An ``LMLoss`` holds the loss module, its configured weight or schedule, tags,
modifiers, its :class:`~nectarloss.history.LMHistory` and the run state (step counter,
the weight applied at the latest call). :meth:`LMLoss.step` is the per-step path:
compute, modify per sample, weight and record, without a host sync.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

import torch
from torch import Tensor

from nectarloss.balancing.base import Balancer
from nectarloss.history import LMHistory
from nectarloss.losses import LossEntry, find_loss_entry
from nectarloss.modifiers.base import LossContext, Modifier
from nectarloss.schedules import Schedule
from nectarloss.validation import (
    add_note,
    check_inputs,
    check_name,
    check_tags,
    check_weight,
    shape_of,
    weight_and_schedule_problem,
)

__all__ = ["LMHistory", "LMLoss", "check_weight", "refuse_when_compiling", "traced_epoch"]


def _on_device(history: LMHistory) -> bool:
    """Whether a call records with device operations only.

    Inside ``torch.compile`` (the check is a constant there, so nothing else is read)
    and while a CUDA graph is being captured.
    """
    if torch.compiler.is_compiling():
        return True
    segment = history.segment
    return segment is not None and segment.is_cuda and torch.cuda.is_current_stream_capturing()


def refuse_when_compiling(owner: str, what: str) -> None:
    """Raise a clear error if ``what`` (it reads values back to the host) is being compiled."""
    if torch.compiler.is_compiling():
        raise RuntimeError(
            f"{owner}: {what} reads values back to the host, so it cannot run inside a "
            "compiled step; call it outside the compiled region."
        )


def traced_epoch(owner: str, epoch: object) -> float:
    """``epoch``, checked as ``check_epoch`` does, in a form a compiled step can trace.

    A comparison of a dynamic int is a guard on its range, not on its value, so it
    does not recompile as epochs change.
    """
    if epoch is None:
        raise ValueError(
            f"{owner}: `epoch` expected a number in a compiled or captured step (its "
            "schedule is per epoch, and the manager's latest epoch is host state); pass "
            "epoch=... to each call."
        )
    if type(epoch).__module__ == "numpy":  # Dynamo traces it as an array (device data)
        raise TypeError(
            f"{owner}: `epoch` expected an int or a float in a compiled or captured step, "
            "got a NumPy number; pass int(epoch) or float(epoch)."
        )
    if isinstance(epoch, (bool, Tensor)) or not isinstance(epoch, (int, float, torch.SymInt)):
        raise TypeError(f"{owner}: `epoch` expected an int or a float, got {type(epoch).__name__}.")
    if not epoch >= 0:  # NaN fails it too
        raise ValueError(f"{owner}: `epoch` expected a finite number >= 0, got {epoch}.")
    return cast(float, epoch)


def _describe(inputs: tuple[Any, ...]) -> str:
    """``"inputs of shape (2, 3), (2, 3)"`` for an error note."""
    shapes = ", ".join(
        str(tuple(x.shape)) if isinstance(x, Tensor) else type(x).__name__ for x in inputs
    )
    return f"inputs of shape {shapes}"


@dataclass(eq=False)
class LMLoss:
    """One registered loss: its module, weight, schedule, tags, modifiers and history.

    Args:
        name: Unique name within a manager (``"G_L1"``).
        function: The loss module or callable; it must return a Tensor.
        loss_weight: Constant weight, used when ``schedule`` is ``None`` (it must stay
            1.0 with a schedule: the schedule's values are the weights).
        schedule: Optional weight schedule; when given it defines the weight.
        tags: Lookup tags (``["G"]``).
        modifiers: Per-sample modifiers applied in order (see ``nectarloss.modifiers``).
        last_loss_map: Detached output of the latest call (set by the manager).
        history: The recent values (allocated by the manager at registration).
        balancer: Optional adaptive weight source (see :mod:`nectarloss.balancing`):
            the weight applied is ``loss_weight`` (or the schedule's value) times its
            factor, a device value logged per step.
    """

    name: str
    function: Callable[..., Any]
    loss_weight: float = 1.0
    schedule: Schedule | None = None
    tags: list[str] = field(default_factory=list)
    modifiers: list[Modifier] = field(default_factory=list)
    last_loss_map: Tensor | None = None
    history: LMHistory = field(default_factory=lambda: LMHistory(capacity=0))
    #: Raw (unweighted, post-modifier) mean of the latest call, detached, on the device.
    last_value: Tensor | None = field(default=None, repr=False)
    #: Weight applied at the latest call.
    last_weight: float | None = field(default=None, repr=False)
    #: Number of calls so far (the step counter for ``unit="step"`` schedules).
    num_steps: int = field(default=0, repr=False)
    #: The catalog entry of ``function`` when it is a known loss (set at registration);
    #: used to check the number of inputs of each call.
    catalog_entry: LossEntry | None = field(default=None, repr=False)
    #: Check a catalog loss's inputs (count, shapes) at each call; ``False`` leaves the
    #: inputs to torch (which broadcasts a target of another shape, with a warning).
    check_inputs: bool = field(default=True, repr=False)
    balancer: Balancer | None = None
    #: The weight applied at the latest call of a balanced loss (detached, 0-d, on the
    #: device); ``last_weight`` then holds the loss's own weight before the factor.
    last_applied: Tensor | None = field(default=None, repr=False)

    def weight_at(self, epoch: float, step: int) -> float:
        """The weight this loss gets at ``epoch`` / ``step`` (host math, no sync)."""
        schedule = self.schedule
        if schedule is None:
            return self.loss_weight
        t = epoch if schedule.unit == "epoch" else step
        try:
            value = schedule.value(t)
        except TypeError as exc:  # a custom curve returned a non-number
            raise TypeError(f"{self.name}: {exc}") from exc
        return check_weight(self.name, value, f"schedule value at {schedule.unit} {t}")

    @staticmethod
    def from_spec_result(result: object, owner: str) -> list[LMLoss]:
        """The entries of a spec function's result, checked to be ``{name: LMLoss(name)}``.

        Raises:
            TypeError: ``result`` is not a mapping, or an entry is not an ``LMLoss``.
            ValueError: An entry's name differs from its key.
        """
        if not isinstance(result, Mapping):
            raise TypeError(
                f"LossManager: spec {owner!r} expected to return dict[str, LMLoss], "
                f"got {type(result).__name__}."
            )
        entries: list[LMLoss] = []
        for key, entry in result.items():
            if not isinstance(entry, LMLoss):
                kind = type(entry)
                hint = (
                    " (NectarGAN's LMLoss: use nectarloss.compat.nectargan.LossManager, "
                    "which converts it)"
                    if kind.__name__ == "LMLoss"
                    else ""
                )
                raise TypeError(
                    f"LossManager: spec {owner!r} entry {key!r} expected a nectarloss.LMLoss, "
                    f"got {kind.__module__}.{kind.__qualname__}{hint}."
                )
            if entry.name != key:
                raise ValueError(
                    f"LossManager: spec {owner!r} entry {key!r} expected an LMLoss named "
                    f"{key!r}, got {entry.name!r}."
                )
            entries.append(entry)
        return entries

    def validated(self) -> LMLoss:
        """Check the fields (raising a clear error naming the loss) and return ``self``.

        Also looks the function up in the loss catalog, so calls can check their inputs.

        Raises:
            ValueError: A bad name or weight, or modifiers on a reducing loss.
            TypeError: A field of the wrong type.
        """
        name = check_name(self.name)
        if not callable(self.function):
            raise TypeError(
                f"{name}: `loss_fn` expected a callable (an nn.Module), "
                f"got {type(self.function).__name__}."
            )
        self.loss_weight = check_weight(name, self.loss_weight)
        if self.schedule is not None and not isinstance(self.schedule, Schedule):
            raise TypeError(
                f"{name}: `schedule` expected a Schedule or None, "
                f"got {type(self.schedule).__name__}."
            )
        if self.balancer is not None and not isinstance(self.balancer, Balancer):
            raise TypeError(
                f"{name}: `balancer` expected a nectarloss.balancing.Balancer or None, "
                f"got {type(self.balancer).__name__}."
            )
        problem = weight_and_schedule_problem(self.loss_weight, self.schedule is not None)
        if problem:
            raise ValueError(f"{name}: {problem}.")
        self.tags = check_tags(name, self.tags)
        for m in self.modifiers:
            if not isinstance(m, Modifier):
                raise TypeError(
                    f"{name}: `modifiers` expected nectarloss modifiers, got {type(m).__name__}."
                )
        reduction = getattr(self.function, "reduction", "none")
        if self.modifiers and reduction != "none":
            raise ValueError(
                f"{name}: modifiers need a per-sample loss, but the loss function reduces with "
                f"reduction={reduction!r}; construct it with reduction='none'."
            )
        if isinstance(self.function, torch.nn.Module) and self.check_inputs:
            self.catalog_entry = find_loss_entry(self.function)
        return self

    def prepare(
        self,
        history_size: int,
        device: torch.device | None,
        first_step: int = 0,
        keep_latest: bool = False,
    ) -> None:
        """Move the module and modifiers to ``device`` and allocate the history.

        Args:
            history_size: Values buffered before a flush is due.
            device: Where the module, modifiers and buffer go (``None``: where they are).
            first_step: The step the next call gets (a resumed log's next step).
            keep_latest: Keep only the latest value (a manager without a log).
        """
        if device is not None:
            self._move_modules(device)
        schedule = self.schedule
        # A built-in step curve's weights are recomputed when read (nothing stored per
        # step); a custom callable may hold state of its own, so its weights are stored;
        # a balanced loss's weights are device values.
        built_in = schedule is not None and not schedule.is_custom and self.balancer is None
        by_step = built_in and schedule is not None and schedule.unit == "step"
        by_epoch = built_in and schedule is not None and schedule.unit == "epoch"
        self.history = LMHistory(
            history_size,
            device=device,
            weight_of_step=partial(self.weight_at, 0) if by_step else None,
            # a compiled step records the epoch; the log gets the host curve's weight
            weight_of_time=self._weight_at_epoch if by_epoch else None,
            device_weights=self.balancer is not None,
        )
        self.num_steps = self.history.first_step = first_step
        # where compiled steps record; the first eager call moves it to the values' device
        self.history.ensure_segment(
            device if device is not None else torch.device("cpu"), keep_latest=keep_latest
        )

    def _move_modules(self, device: torch.device) -> None:
        """Move the loss module, the modifiers and the balancer to ``device``."""
        if isinstance(self.function, torch.nn.Module):
            self.function.to(device)
        for m in self.modifiers:
            m.to(device)
        if self.balancer is not None:
            self.balancer.to(device)

    def to(self, device: torch.device) -> LMLoss:
        """Move the modules and the buffers (with unflushed values) to ``device``."""
        self.settle()
        self._move_modules(device)
        self.history.to(device)
        if self.last_applied is not None:
            self.last_applied = self.last_applied.to(device)
        return self

    def _weight_at_epoch(self, epoch: float) -> float:
        return self.weight_at(epoch, 0)

    def settle(self) -> None:
        """Take in what compiled or captured steps recorded (one host copy, if any).

        Afterwards ``num_steps``, ``last_value`` and ``last_weight`` are up to date.
        """
        refuse_when_compiling(self.name, "a query, flush or state_dict")
        history = self.history
        segment = history.segment
        if segment is None:
            return
        history.settle(self.name)  # a no-op unless something was recorded on the device
        next_step = history.first_step + history.count
        if next_step > self.num_steps:  # taken in now, or by an earlier read of the history
            self.num_steps = next_step
            self.last_value = segment.last.clone()
            self.last_weight = history.latest_weight

    def describe(self) -> dict[str, Any]:
        """How the log's header describes this loss: tags, weight, schedule, modifiers."""
        schedule = self.schedule
        if schedule is None:
            described: dict[str, Any] | None = None
        elif schedule.is_custom:  # a callable cannot be written; say what it is
            described = {"schedule": "custom", "unit": schedule.unit}
        else:
            described = schedule.to_dict()
        described_loss = {
            "tags": list(self.tags),
            "weight": self.loss_weight,
            "schedule": described,
            "modifiers": [type(m).__name__ for m in self.modifiers],
        }
        if self.balancer is not None:
            described_loss["balancer"] = type(self.balancer).__name__
        return described_loss

    @property
    def applied_weight(self) -> float | Tensor | None:
        """The weight applied at the latest call, as kept (``None`` before the first).

        A host float, or for a balanced loss a detached 0-d device tensor.
        """
        return self.last_weight if self.last_applied is None else self.last_applied

    @property
    def current_weight(self) -> float:
        """The weight applied at the latest call; before the first, the weight at time 0.

        This is the one owner of the run's weight: schedules are pure curves. For a
        balanced loss it is the weight applied at the latest call, read from the device
        (a sync); before the first call, the loss's own weight.
        """
        weight = self.applied_weight
        if weight is None:
            return self.weight_at(0, self.num_steps)
        return float(weight)

    # -- the per-step path (never syncs) -------------------------------------------------
    def run(
        self,
        inputs: tuple[Any, ...],
        epoch: float | None,
        timesteps: Tensor | None,
        context: dict[str, Any],
        lock: AbstractContextManager[Any],
        keep_history: bool = True,
        check_context: bool = False,
        weight: float | None = None,
    ) -> tuple[Tensor, Tensor, int]:
        """Compute, modify per sample, weight and record one call. Never syncs.

        Args:
            inputs: The loss inputs.
            epoch: The epoch for epoch-driven schedules.
            timesteps: Diffusion timesteps for modifiers, or ``None``.
            context: Other keywords for the modifiers.
            lock: Held while the step number is taken and the value recorded, so
                threads and flushes see whole records.
            keep_history: ``False`` keeps only the latest value (no log).
            check_context: Let each modifier check the context first (may sync).
            weight: The weight for this call, computed by the caller (an adapter with
                curves of its own, such as :mod:`nectarloss.compat.nectargan`); ``None``
                uses the loss's ``loss_weight`` or ``schedule``.

        Returns:
            The weighted loss (graph intact), the raw value recorded (detached) and its
            step number.
        """
        out = self._call_function(inputs)
        loss_map = out.detach()
        if self.modifiers:
            value = self._apply_modifiers(out, inputs, timesteps, context, check_context)
            raw = value.detach()
        else:
            if context:  # timesteps are accepted and unused, so loops need not special-case
                raise TypeError(
                    f"{self.name}: unexpected keyword(s) {sorted(context)} for a loss "
                    "without modifiers."
                )
            value = out
            raw = loss_map if out.ndim == 0 else loss_map.mean()
        if _on_device(self.history):
            return self._run_on_device(value, raw, loss_map, epoch, weight)
        with lock:
            self.settle()  # compiled calls first, in order (one copy if any, else none)
            step = self.num_steps
            if weight is None:
                weight = (
                    self.loss_weight
                    if self.schedule is None
                    else self._scheduled_weight(0 if epoch is None else epoch, step)
                )
            balancer = self.balancer
            applied: float | Tensor = weight
            if balancer is None:
                weighted = value * weight
            else:  # device work only: the factor is a tensor, recorded as one
                weighted, applied = balancer.weigh(
                    self.name, value, weight, 0 if epoch is None else epoch
                )
            history = self.history
            if not keep_history and history.count:
                history.clear()
            if history.count == 0:  # a new buffer: follow the values' device and dtype
                history.ensure_segment(raw.device, raw.dtype, keep_latest=not keep_history)
            history.record(raw, applied, step)
            self.last_value, self.last_loss_map = raw, loss_map
            self.last_weight = weight
            if isinstance(applied, Tensor):
                self.last_applied = applied
            self.num_steps = step + 1
            segment = history.segment
            if segment is not None and self.schedule is not None and self.schedule.unit == "step":
                segment.base_step.fill_(step + 1)  # where a compiled step goes on
        return weighted, raw, step

    def _run_on_device(
        self,
        value: Tensor,
        raw: Tensor,
        loss_map: Tensor,
        epoch: float | None,
        weight: float | None,
    ) -> tuple[Tensor, Tensor, int]:
        """Record with device operations only (inside ``torch.compile`` or a CUDA graph).

        The weight is computed from tensors (the epoch as a tensor, the step from the
        device counter), so nothing here depends on a changing Python number. The step
        number is not known on the host: ``-1`` is returned.
        """
        if self.balancer is not None:
            raise RuntimeError(
                f"{self.name}: a balanced loss ({type(self.balancer).__name__}) cannot run in "
                "a compiled or captured step; compute it outside the compiled region."
            )
        segment = self.history.segment
        if segment is None or segment.device != raw.device:
            raise RuntimeError(
                f"{self.name}: a compiled or captured step on {raw.device} needs the loss's "
                "buffers there; pass device= to LossManager, or call the loss once eagerly "
                "first."
            )
        if raw.dtype == torch.float64 and segment.values.dtype != torch.float64:
            raise RuntimeError(
                f"{self.name}: a float64 loss in a compiled or captured step needs float64 "
                "buffers; call the loss once eagerly first."
            )
        schedule = self.schedule
        if not torch.compiler.is_compiling():
            segment.captured = True  # a CUDA graph capture: replays run no Python
        applied: Tensor | float
        aux: Tensor | float
        if weight is not None:
            applied = aux = weight
        elif schedule is None:
            applied = aux = self.loss_weight
        elif schedule.unit == "epoch":
            t = torch.zeros((), dtype=torch.float64, device=segment.device) + traced_epoch(
                self.name, epoch
            )
            applied = schedule.value_tensor(t)
            aux = applied if schedule.is_custom else t  # the host recomputes a built-in
        else:
            t = segment.next_step().to(torch.float64)
            applied = aux = schedule.value_tensor(t)  # a built-in's aux goes unused
        segment.record(raw, aux)
        self.last_loss_map = loss_map
        if isinstance(applied, Tensor):
            applied = applied.to(value.dtype)
        return value * applied, raw, -1

    def _call_function(self, inputs: tuple[Any, ...]) -> Tensor:
        """Run the loss function; the user's exceptions keep their type (with a note)."""
        catalog = self.catalog_entry
        if catalog is not None:
            if len(inputs) != catalog.arity:
                catalog.check_arity(len(inputs), owner=self.name)
            if catalog.same_shape and shape_of(inputs[1]) != shape_of(inputs[0]):
                check_inputs(self.name, catalog, inputs)
        try:
            out = self.function(*inputs)
        except Exception as exc:
            if catalog is not None:  # name the bad input when it is a wrong type or device
                check_inputs(self.name, catalog, inputs)
            add_note(exc, f"nectarloss: raised by loss {self.name!r} on {_describe(inputs)}")
            raise
        if not isinstance(out, Tensor):
            hint = (
                " (torch's AdaptiveLogSoftmaxWithLoss returns (output, loss): register "
                "nectarloss.losses.AdaptiveLogSoftmaxLoss, which returns the loss)"
                if isinstance(self.function, torch.nn.AdaptiveLogSoftmaxWithLoss)
                else ""
            )
            raise TypeError(
                f"{self.name}: the loss function expected to return a Tensor, "
                f"got {type(out).__name__}{hint}."
            )
        return out

    def _scheduled_weight(self, epoch: float, step: int) -> float:
        """:meth:`weight_at`, with a note naming the loss on a schedule's own error."""
        if self.schedule is None:
            return self.loss_weight
        try:
            return self.weight_at(epoch, step)
        except Exception as exc:
            add_note(exc, f"nectarloss: raised by the schedule of loss {self.name!r}")
            raise

    def _apply_modifiers(
        self,
        out: Tensor,
        inputs: tuple[Any, ...],
        timesteps: Tensor | None,
        context: dict[str, Any],
        check_context: bool,
    ) -> Tensor:
        """Reduce ``out`` to ``[B]``, run the modifiers, average over the batch."""
        if out.dim() == 0:
            raise ValueError(
                f"{self.name}: modifiers need a per-sample loss, but the loss function "
                "returned a scalar; construct it with reduction='none'."
            )
        ctx = LossContext(
            loss_name=self.name,
            inputs=tuple(x for x in inputs if isinstance(x, Tensor)),
            timesteps=timesteps,
            extra=context,
        )
        if check_context:
            for modifier in self.modifiers:
                modifier.check_context(ctx)
        per_sample = out.flatten(1).mean(dim=1) if out.dim() > 1 else out
        for modifier in self.modifiers:
            modified = modifier(per_sample, ctx)
            if not isinstance(modified, Tensor) or modified.shape != per_sample.shape:
                got = tuple(modified.shape) if isinstance(modified, Tensor) else type(modified)
                raise ValueError(
                    f"{self.name}: modifier {type(modifier).__name__} expected to return "
                    f"shape {tuple(per_sample.shape)}, got {got}."
                )
            per_sample = modified
        if per_sample.shape[0] == 0:  # an empty batch: a zero that stays in the graph
            return per_sample.sum()
        return per_sample.mean()

    @property
    def confidences(self) -> Tensor:
        """Per-sample confidences of the latest batch from this loss's SuperLoss.

        Raises:
            ValueError: No modifier estimates confidences, or none has run yet.
        """
        for modifier in self.modifiers:
            confidence = modifier.confidences
            if confidence is not None:
                if confidence.numel() == 0:
                    raise ValueError(f"{self.name}: no confidences yet; compute the loss first.")
                return confidence
        raise ValueError(
            f"{self.name}: `get_confidences` expected a loss with a SuperLoss modifier, "
            f"got modifiers {[type(m).__name__ for m in self.modifiers]}."
        )

    def state_dict(self) -> dict[str, Any]:
        """Counters, current weight, unflushed history and module/modifier state.

        Holds only tensors and plain values, so ``torch.load(..., weights_only=True)``
        reads it. ``last_loss_map`` is not saved.
        """
        function = self.function
        return {
            "num_steps": self.num_steps,
            "loss_weight": self.loss_weight,
            "last_weight": self.last_weight,
            "last_value": None if self.last_value is None else self.last_value.detach().cpu(),
            "history": self.history.state_dict(),
            "function": function.state_dict() if isinstance(function, torch.nn.Module) else {},
            "modifiers": [m.state_dict() for m in self.modifiers],
            "balancer": None if self.balancer is None else self.balancer.state_dict(),
            "last_applied": None if self.last_applied is None else self.last_applied.detach().cpu(),
        }

    #: Keys of :meth:`state_dict` (``balancer`` and ``last_applied`` may be missing
    #: from states saved before balancers existed).
    STATE_KEYS = frozenset(
        {
            "num_steps",
            "loss_weight",
            "last_weight",
            "last_value",
            "history",
            "function",
            "modifiers",
        }
    )

    def check_state(self, state: object) -> None:
        """Raise ``ValueError`` unless ``state`` is a valid :meth:`state_dict` for this loss."""
        owner = self.name
        if not isinstance(state, Mapping):
            raise ValueError(f"{owner}: state expected a mapping, got {type(state).__name__}.")
        missing = sorted(self.STATE_KEYS - set(state))
        if missing:
            raise ValueError(f"{owner}: state is missing {missing}.")
        num_steps = state["num_steps"]
        if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 0:
            raise ValueError(f"{owner}: state `num_steps` expected an int >= 0, got {num_steps!r}.")
        try:
            check_weight(owner, state["loss_weight"], "loss_weight")
            for key in ("last_weight", "current_value"):  # current_value: older states
                if state.get(key) is not None:
                    check_weight(owner, state[key], key)
        except TypeError as exc:
            raise ValueError(str(exc)) from None
        last = state["last_value"]
        if last is not None and not (isinstance(last, Tensor) and last.numel() == 1):
            raise ValueError(f"{owner}: state `last_value` expected None or a 1-element tensor.")
        self._check_balancer_state(state.get("balancer"))
        history = state["history"]
        if not isinstance(history, Mapping):
            raise ValueError(f"{owner}: state `history` expected a mapping.")
        self.history.check_state(history, owner=owner)
        if (
            history["values"].numel()
            and history["first_step"] + history["values"].numel() > num_steps
        ):
            raise ValueError(
                f"{owner}: state history ends at step "
                f"{history['first_step'] + history['values'].numel() - 1}, past `num_steps` "
                f"{num_steps}."
            )
        modifiers = state["modifiers"]
        if not isinstance(modifiers, (list, tuple)) or len(modifiers) != len(self.modifiers):
            got = len(modifiers) if isinstance(modifiers, (list, tuple)) else modifiers
            raise ValueError(
                f"{owner}: state has {got} modifier state(s), the loss has {len(self.modifiers)}."
            )
        if not isinstance(state["function"], Mapping):
            raise ValueError(f"{owner}: state `function` expected a mapping.")
        applied = state.get("last_applied")
        if applied is not None and not (isinstance(applied, Tensor) and applied.numel() == 1):
            raise ValueError(f"{owner}: state `last_applied` expected None or a 1-element tensor.")

    def _check_balancer_state(self, saved: object) -> None:
        """Raise ``ValueError`` unless ``saved`` fits this loss's balancer (keys, shapes)."""
        owner = self.name
        balancer = self.balancer
        if (saved is None) != (balancer is None):
            raise ValueError(
                f"{owner}: state {'has no' if saved is None else 'has a'} balancer "
                f"state, the loss {'has' if balancer is not None else 'has no'} balancer."
            )
        if balancer is None:
            return
        if not isinstance(saved, Mapping):
            raise ValueError(f"{owner}: state `balancer` expected a mapping.")
        balancer.check_state(saved, owner)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved.

        Raises:
            ValueError: The state is malformed (checked before anything changes).
        """
        self.check_state(state)
        if isinstance(self.function, torch.nn.Module) and state["function"]:
            self.function.load_state_dict(state["function"])
        for modifier, modifier_state in zip(self.modifiers, state["modifiers"], strict=True):
            modifier.load_state_dict(modifier_state)
        if self.balancer is not None:
            self.balancer.load_state_dict(state["balancer"])
        self.num_steps = int(state["num_steps"])
        self.loss_weight = float(state["loss_weight"])
        self.last_weight = state["last_weight"]
        last = state["last_value"]
        device = self.history.device
        self.last_value = None if last is None else (last.to(device) if device else last)
        applied = state.get("last_applied")
        self.last_applied = (
            None if applied is None else (applied.to(device) if device else applied).reshape(())
        )
        self.history.load_state_dict(state["history"])

    def stripped(self) -> LMLoss:
        """A shallow copy with an empty history (NectarGAN's ``strip=True``)."""
        copy = LMLoss(
            name=self.name,
            function=self.function,
            loss_weight=self.loss_weight,
            schedule=self.schedule,
            tags=list(self.tags),
            modifiers=list(self.modifiers),
            last_loss_map=self.last_loss_map,
            history=LMHistory(capacity=0),
            balancer=self.balancer,
            last_applied=self.last_applied,
        )
        copy.last_value, copy.last_weight, copy.num_steps = (
            self.last_value,
            self.last_weight,
            self.num_steps,
        )
        return copy

    def has_tag(self, tags: Sequence[str]) -> bool:
        """Whether any of ``tags`` is this loss's name or one of its tags."""
        return any(t == self.name or t in self.tags for t in tags)

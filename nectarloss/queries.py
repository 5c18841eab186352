"""``LossQueries``: the read side of a manager: lookups, latest values, weights, printing.

:class:`~nectarloss.LossManager` inherits it. Nothing here writes the log or changes
a loss: queries are local (``sync=True`` averages over ranks) and cost at most one
device-to-host copy per device.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from nectarloss.console import format_values, get_console, print_line, render_text, summary_table
from nectarloss.distributed import is_distributed
from nectarloss.errors import UnknownLossError
from nectarloss.records import LMLoss
from nectarloss.transfer import values_to_host

__all__ = ["LossQueries"]


class LossQueries:
    """Lookups and reports over the registered losses (``self._losses``, in order)."""

    _losses: dict[str, LMLoss]

    def _entry(self, loss_name: str) -> LMLoss:
        entry = self._losses.get(loss_name)
        if entry is None:
            known = ", ".join(repr(n) for n in self._losses) or "none"
            raise UnknownLossError(
                f"LossManager: no loss named {loss_name!r}; registered: {known}."
            )
        return entry

    # ------------------------------------------------------------------ queries
    def _select(self, query: Sequence[str] | str | None) -> list[LMLoss]:
        entries = self._selected(query)
        for entry in entries:  # take in what compiled steps recorded (a sync only then)
            entry.settle()
        return entries

    def _selected(self, query: Sequence[str] | str | None) -> list[LMLoss]:
        if query is None:
            return list(self._losses.values())
        items = [query] if isinstance(query, str) else list(query)
        for item in items:
            if not isinstance(item, str):
                raise TypeError(
                    f"LossManager: `query` expected a list of names or tags, got item {item!r}."
                )
            if not any(e.has_tag([item]) for e in self._losses.values()):
                tags = sorted({t for e in self._losses.values() for t in e.tags})
                raise ValueError(
                    f"LossManager: `query` item {item!r} matches no loss name or tag; "
                    f"names: {list(self._losses)}, tags: {tags}."
                )
        return [e for e in self._losses.values() if e.has_tag(items)]

    def get_registered_losses(
        self, query: Sequence[str] | str | None = None, strip: bool = True
    ) -> dict[str, LMLoss]:
        """Registered losses by name, filtered by names or tags.

        Args:
            query: Names or tags; a loss matches if its name or any tag is listed.
            strip: Return copies with an empty history (cheap to pass around). The
                manager's own histories are never cleared by this call.
        """
        return {e.name: (e.stripped() if strip else e) for e in self._select(query)}

    def get_loss_values(
        self,
        query: Sequence[str] | str | None = None,
        precision: int = 2,
        weighted: bool = True,
        sync: bool = False,
    ) -> dict[str, float]:
        """Latest value of each matching loss, rounded to ``precision`` digits.

        Weighted by default (raw mean times the weight applied), as NectarGAN reports;
        ``weighted=False`` gives the raw (post-modifier) mean. One device-to-host copy
        per device. A loss not computed yet reads ``nan``.

        Args:
            query: Names or tags; ``None`` for every loss.
            precision: Digits to round to.
            weighted: Multiply each raw mean by the weight it was applied with.
            sync: Under ``torch.distributed``, average each loss over the ranks that
                computed it (like Lightning's ``sync_dist``); a loss no rank computed
                reads ``nan``. This is a collective (a names check and one
                ``all_reduce``): call it on every rank with the same ``query``. Without
                it (the default) the values are this rank's own and no other rank is
                involved, so ``if rank == 0: lm.print_losses()`` is safe.

        Raises:
            RankMismatchError: With ``sync``, on every rank, when the ranks' queries
                select different losses.
        """
        entries = self._select(query)
        values: list[Tensor | None] = []
        weights: list[float] = []
        for e in entries:
            value, weight = e.last_value, e.applied_weight if weighted else None
            if isinstance(weight, Tensor):  # a balanced loss's: multiplied on the device
                value, weight = (None if value is None else value * weight), None
            values.append(value)
            weights.append(1.0 if weight is None else weight)
        host = values_to_host(
            [e.name for e in entries], values, weights, across_ranks=bool(sync) and is_distributed()
        )
        return {e.name: round(v, precision) for e, v in zip(entries, host, strict=True)}

    def get_loss_tensors(
        self, query: Sequence[str] | str | None = None, weighted: bool = True
    ) -> dict[str, Tensor]:
        """Detached output of the latest call of each matching loss, on its device.

        Weighted by default (the output times the weight applied), like
        :meth:`get_loss_values`; ``weighted=False`` gives the loss function's own output.
        A loss not computed yet is left out. No host sync.
        """
        out: dict[str, Tensor] = {}
        for e in self._select(query):
            loss_map, weight = e.last_loss_map, e.applied_weight
            if loss_map is not None:
                out[e.name] = loss_map * weight if weighted and weight is not None else loss_map
        return out

    def get_loss_weights(
        self, query: Sequence[str] | str | None = None, precision: int = 2
    ) -> dict[str, float]:
        """Weight of each matching loss, rounded to ``precision`` digits.

        This is the weight applied at the loss's latest call, or the one its first
        call will get. Balanced losses' weights are device values: reading them is one
        copy each.
        """
        return {e.name: round(e.current_weight, precision) for e in self._select(query)}

    def get_confidences(self, loss_name: str) -> Tensor:
        """Per-sample confidences (sigma*) of the latest batch from a loss's SuperLoss.

        Low confidence marks hard or mislabeled samples. The tensor stays on the device.

        Raises:
            ValueError: The loss has no SuperLoss modifier, or it has not run yet.
        """
        return self._entry(loss_name).confidences

    # ------------------------------------------------------------------ printing
    def print_weights(
        self,
        query: Sequence[str] | str | None = None,
        precision: int = 2,
        capture: bool = False,
    ) -> str | None:
        """Print (or return with ``capture=True``) ``"Loss weights: name: w ..."``."""
        text = format_values("Loss weights", self.get_loss_weights(query, precision), precision)
        if capture:
            return text
        print_line(text)
        return None

    def print_losses(
        self,
        epoch: int | None = None,
        iteration: int | None = None,
        query: Sequence[str] | str | None = None,
        precision: int = 2,
        capture: bool = False,
    ) -> str | None:
        """Print (or return) ``"(epoch: e, iters: i) Losses: name: v ..."`` (weighted)."""
        prefix = ""
        if epoch is not None:
            prefix = f"(epoch: {epoch}" + (
                f", iters: {iteration}) " if iteration is not None else ") "
            )
        text = prefix + format_values("Losses", self.get_loss_values(query, precision), precision)
        if capture:
            return text
        print_line(text)
        return None

    def summary(self, precision: int = 4, capture: bool = False) -> str | None:
        """A table per loss: last, mean, min, max (weighted) and weight, over the whole log.

        A logging manager flushes first (under DDP call it on every rank; ranks other
        than 0, which hold no log, show their latest local values); without a log it
        covers the latest values only. Prints it with rich, or returns it as plain text
        with ``capture=True``.
        """
        stats = self._summary_stats()
        for name, row in stats.items():
            if name in self._losses:
                row["weight"] = self._losses[name].current_weight
        table = summary_table(stats, title="nectarloss summary", precision=precision)
        if capture:
            return render_text(table)
        get_console().print(table)
        return None

    def _summary_stats(self) -> dict[str, dict[str, float]]:
        """Per-loss statistics for :meth:`summary`: here, of the latest values only."""
        values = self.get_loss_values(precision=12)
        return {
            name: {"last": v, "mean": v, "min": v, "max": v, "count": 1.0}
            for name, v in values.items()
        }

    # ------------------------------------------------------------------ container
    def __contains__(self, loss_name: object) -> bool:
        return loss_name in self._losses

    def __len__(self) -> int:
        return len(self._losses)

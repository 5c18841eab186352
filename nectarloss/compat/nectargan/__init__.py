"""NectarGAN's loss-manager API over the nectarloss core: change the imports, keep the code.

Trainer code written for NectarGAN (``nectargan.losses.loss_manager``,
``nectargan.losses.lm_data``, ``nectargan.scheduling``) runs unchanged after its
imports name this module::

    from nectarloss.compat.nectargan import LossManager, LMLoss, LMHistory, Schedule

What NectarGAN's trainers rely on holds: the positional ``Config`` (any object with the
same attributes), its epoch convention (a ``Schedule`` given any non-default field
starts and ends one epoch early, since trainers count epochs from 1), its linear and
exponential curves, ``loss_kwargs={"weight_kwargs": ...}``, ``buffer_size`` set after
construction, ``loss_fns``, a replacing ``init_from_spec`` (``None`` resets), weighted
``get_loss_tensors`` and ``history.losses``, tag-only queries (no match: ``{}``), its
print formats, and ``loss_log.json`` in its full layout. NectarGAN's own ``LMLoss`` and
``Schedule`` objects (a spec module left unchanged) are accepted and converted.

Underneath is a native :class:`nectarloss.LossManager` (:attr:`LossManager.native`):
the per-step path never syncs (NectarGAN reads every value back at every call) and
``loss_log.jsonl`` is the record. ``loss_log.json`` is derived from it: rewritten whole
by :meth:`LossManager.update_loss_log` and :meth:`LossManager.export_base_log`, so its
cost grows with the run (NectarGAN rewrites it once per loss per update).

Deliberate differences from NectarGAN:

* ``register_loss_fn`` gives each loss its own default ``Schedule`` (NectarGAN shares
  one default object, so every unscheduled loss registered that way ends up with the
  weight of the last one).
* The automatic flush of a full buffer goes to ``loss_log.jsonl`` only; ``loss_log.json``
  catches up at the next ``update_loss_log``.
* A loss not computed yet reads ``nan`` in ``get_loss_values`` (NectarGAN raises
  ``IndexError``), and the latest value stays readable after ``update_loss_log``.
* An existing log in the experiment directory is continued when
  ``config.train.load.continue_train`` is true, and replaced otherwise (NectarGAN
  truncates ``loss_log.json`` in ``export_base_log`` either way).
* ``compute_loss_xyz`` works (NectarGAN raises ``NotImplementedError``).
* A new adapter on a directory another adapter of this process writes to takes it
  over (the old one flushes and lets go); another process's gets ``LogInUseError``.
* Loss names follow nectarloss's rule (non-empty, no path separators or control
  characters), and a weight must be finite (NectarGAN would multiply by NaN).
* Weighted values have NectarGAN's exact bits for losses that reduce to a scalar; for
  ``reduction="none"`` outputs (NectarGAN averages ``loss * weight``, the adapter
  weights the average) they agree to rounding. ``last_loss_map`` is the loss's output,
  not a copy of it.
* Interpreter exit flushes ``loss_log.jsonl``; ``loss_log.json`` is rewritten by
  ``update_loss_log``, ``export_base_log`` and :meth:`LossManager.close`.
"""

from nectarloss.compat.nectargan.manager import LossManager
from nectarloss.compat.nectargan.records import LMHistory, LMLoss
from nectarloss.compat.nectargan.schedules import Schedule, Scheduler, TorchScheduler, schedule_map

__all__ = [
    "LMHistory",
    "LMLoss",
    "LossManager",
    "Schedule",
    "Scheduler",
    "TorchScheduler",
    "schedule_map",
]

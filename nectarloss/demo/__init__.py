"""The ``nectarloss demo``: a compact pix2pix trained end to end on generated image pairs.

Everything the demo needs is here and runs offline, one concern per module:

* :mod:`~nectarloss.demo.config`: :class:`DemoConfig`, the run settings, read from
  ``configs/demo.json`` (a link to the packaged file :data:`DEFAULT_CONFIG_PATH`).
* :mod:`~nectarloss.demo.data`: :func:`make_pairs`, a seeded, procedural paired data
  set. The input is the edge map of a few overlapping shapes (circles, squares,
  diamonds); the target is the same picture with every shape filled in the color of its
  kind, so a generator must learn to tell a shape from its outline and to fill it.
* :mod:`~nectarloss.demo.models`: :class:`UNetGenerator` and
  :class:`PatchDiscriminator`, a small pix2pix pair.
* :mod:`~nectarloss.demo.step`: :func:`pix2pix_roles` (which inputs each loss of the
  spec takes) and one training step, the discriminator then the generator.
* :mod:`~nectarloss.demo.training`: :func:`run_demo` trains the pair with the objective
  of a loss spec (``pix2pix_basic`` by default) registered in a
  :class:`~nectarloss.LossManager`, shows a progress bar with live losses and weights,
  flushes the JSON log each epoch, evaluates the generator's L1 on held-out pairs before
  training and after each epoch, and writes a loss graph, a sample grid and a summary
  table.
* :mod:`~nectarloss.demo.images`: :func:`write_png`, :func:`sample_grid` (input |
  generated | target) and the loss graph.
"""

from nectarloss.demo.config import DEFAULT_CONFIG_PATH, DemoConfig, load_demo_config, resolve_device
from nectarloss.demo.data import PALETTE, make_pairs
from nectarloss.demo.images import LOSS_GRAPH_FILENAME, SAMPLES_FILENAME, sample_grid, write_png
from nectarloss.demo.models import PatchDiscriminator, UNetGenerator
from nectarloss.demo.step import pix2pix_roles
from nectarloss.demo.training import DemoResult, heldout_l1, run_demo

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "LOSS_GRAPH_FILENAME",
    "PALETTE",
    "SAMPLES_FILENAME",
    "DemoConfig",
    "DemoResult",
    "PatchDiscriminator",
    "UNetGenerator",
    "heldout_l1",
    "load_demo_config",
    "make_pairs",
    "pix2pix_roles",
    "resolve_device",
    "run_demo",
    "sample_grid",
    "write_png",
]

"""Adapters that give other projects' APIs over the nectarloss core.

* :mod:`nectarloss.compat.nectargan`: NectarGAN's ``LossManager``, ``LMLoss``,
  ``LMHistory``, ``Schedule`` and schedulers, so NectarGAN trainer code runs after
  changing its imports.

The native :class:`nectarloss.LossManager` never imports this package.
"""

"""Integrations with training frameworks; each module imports its framework.

``nectarloss.integrations.lightning.LossManagerCallback`` (needs ``lightning``).
"""

"""Run settings of the demo: :class:`DemoConfig`, read from ``configs/demo.json``.

That file is a link to the packaged one, :data:`DEFAULT_CONFIG_PATH` (the single
source); :func:`load_demo_config` reads it or any other file, :func:`resolve_device`
turns the configured device name into a device.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DemoConfig",
    "coerce_config",
    "load_demo_config",
    "resolve_device",
]

#: The packaged default run settings (the repository's ``configs/demo.json`` links here).
DEFAULT_CONFIG_PATH = Path(__file__).parents[1] / "demo_config.json"


class DemoConfig(BaseModel):
    """Run settings of :func:`~nectarloss.demo.run_demo`, read from ``configs/demo.json``.

    Unknown keys are rejected; numbers are checked strictly (``"4"`` is not an int).

    Attributes:
        epochs: Training epochs.
        steps_per_epoch: Batches per epoch (each one freshly generated).
        batch_size: Pairs per batch.
        image_size: Side of the square images; a multiple of ``2 ** unet_depth``, >= 16.
        unet_depth: Down-sampling levels of the U-Net generator.
        base_channels: Channels of the first generator / discriminator layer.
        max_shapes: Shapes per image (1 to this many).
        lr: Adam learning rate of both networks.
        beta1: Adam ``beta1`` (0.5 as in pix2pix).
        seed: Seeds the weights and both data streams.
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ...
        num_heldout: Held-out pairs the generator's L1 is measured on.
        experiment_dir: Where the log, graph and samples go.
        spec: The loss spec: a shipped spec's name or a path to a JSON spec.
        log_every: Steps between refreshes of the live losses (each one syncs).
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    epochs: int = Field(default=8, ge=1)
    steps_per_epoch: int = Field(default=100, ge=1)
    batch_size: int = Field(default=16, ge=1)
    image_size: int = Field(default=32, ge=16, le=1024)
    unet_depth: int = Field(default=4, ge=2, le=8)
    base_channels: int = Field(default=16, ge=1)
    max_shapes: int = Field(default=3, ge=1, le=16)
    lr: float = Field(default=2e-3, gt=0.0)
    beta1: float = Field(default=0.5, ge=0.0, lt=1.0)
    seed: int = 0
    device: str = "auto"
    num_heldout: int = Field(default=64, ge=1)
    experiment_dir: str = "runs/demo"
    spec: str = "pix2pix_basic"
    log_every: int = Field(default=10, ge=1)

    @model_validator(mode="after")
    def _check_image_size(self) -> DemoConfig:
        factor = 2**self.unet_depth
        if self.image_size % factor:
            raise ValueError(
                f"`image_size` expected a multiple of 2 ** unet_depth = {factor}, "
                f"got {self.image_size}"
            )
        return self


def load_demo_config(path: str | os.PathLike[str] | None = None) -> DemoConfig:
    """Read and validate demo settings from a JSON file.

    Args:
        path: The file; ``None`` reads the packaged default (:data:`DEFAULT_CONFIG_PATH`).

    Returns:
        The validated settings.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: The file is not JSON or does not validate (the message names the
            file and the offending key).
    """
    file = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    try:
        data = orjson.loads(file.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{file}: not valid JSON ({exc}).") from exc
    return _validate_config(data, str(file))


def coerce_config(
    config: DemoConfig | Mapping[str, Any] | str | os.PathLike[str] | None,
) -> DemoConfig:
    """The settings ``run_demo`` was given, as a :class:`DemoConfig`.

    Args:
        config: A :class:`DemoConfig`, a mapping of its fields, a path to a JSON config,
            or ``None`` for the packaged default.

    Returns:
        The validated settings.

    Raises:
        TypeError: ``config`` is none of the above.
        ValueError: The settings do not validate.
    """
    if config is None or isinstance(config, (str, os.PathLike)):
        return load_demo_config(config)
    if isinstance(config, DemoConfig):
        return config
    if isinstance(config, Mapping):
        return _validate_config(dict(config), "demo config")
    raise TypeError(
        "run_demo: `config` expected a DemoConfig, a mapping or a path, "
        f"got {type(config).__name__}."
    )


def _validate_config(data: object, source: str) -> DemoConfig:
    try:
        return DemoConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise ValueError(f"{source}: `{where}`: {first['msg']}.") from exc


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; any other name is checked.

    Raises:
        ValueError: The name is not a torch device, or CUDA is asked for but missing.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(
            f"demo: `device` expected 'auto', 'cpu', 'cuda', ..., got {device!r}."
        ) from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"demo: `device` {device!r} asked for CUDA, but CUDA is not available.")
    return resolved

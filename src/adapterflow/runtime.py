"""Process settings every job shares: torch threads, seeds and the device.

The one place that sets them, for data generation, training and evaluation alike; torch is
imported inside each function, so importing this module stays cheap.

Example:
    >>> from adapterflow.runtime import pick_device, seed_everything, set_threads
    >>> set_threads(None)  # keeps torch's default
    >>> seed_everything(0)
    >>> pick_device("cpu")
    'cpu'
"""

from __future__ import annotations

import os
import random

import numpy as np

from adapterflow.errors import ConfigError


def set_threads(threads: int | None) -> None:
    """Use ``threads`` torch threads (``None`` or 0 keeps the default)."""
    import torch

    if threads:
        torch.set_num_threads(int(threads))


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (torch's on every device, CUDA included),
    as :func:`transformers.set_seed` does."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(requested: str | None = None, *, setting: str = "evaluation.device") -> str:
    """The device ``requested`` names; ``auto`` (or none) is ``cuda`` when available, else
    ``cpu``.

    A device this machine does not have raises :class:`ConfigError` naming ``setting`` (the
    config key ``requested`` came from), before any model is loaded (the config check cannot
    know: on a cluster it runs on the login node, the job on a GPU node).

    Example:
        >>> from adapterflow.runtime import pick_device
        >>> pick_device("auto") in ("cpu", "cuda")
        True
    """
    import platform

    import torch

    requested = requested or "auto"
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    host = platform.node() or "this machine"
    if requested.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(requested.partition(":")[2] or 0)
        if index >= count:
            has = f"{count} CUDA device(s)" if count else "no CUDA device"
            raise ConfigError(
                f"{setting}: {requested!r}, but {host} has {has} (torch "
                f"{torch.__version__}); use auto or cpu, or run the job where a GPU is"
            )
    elif requested == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{setting}: 'mps', but {host} has no MPS device; use auto")
    return requested


def cpu_deepspeed(device: str) -> None:
    """On a ``cpu`` device, point DeepSpeed at its CPU accelerator (unless set already).

    accelerate and transformers import DeepSpeed whenever it is installed; without a GPU it
    would guess its accelerator and print a warning to stdout."""
    if device == "cpu":
        os.environ.setdefault("DS_ACCELERATOR", "cpu")

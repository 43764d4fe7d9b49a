"""Process settings shared by the evaluation jobs: torch threads, seeds and the device.

Example:
    >>> from adapterflow.eval.runtime import pick_device, seed_everything, set_threads
    >>> set_threads(None)  # keeps torch's default
    >>> seed_everything(0)
    >>> pick_device({"device": "cpu"})
    'cpu'
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np

from adapterflow.errors import ConfigError


def set_threads(threads: int | None) -> None:
    """Use ``threads`` torch threads (``None`` or 0 keeps the default)."""
    import torch

    if threads:
        torch.set_num_threads(int(threads))


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(evaluation: Mapping[str, Any]) -> str:
    """The ``evaluation`` block's ``device``; ``auto`` (or none) is ``cuda`` when available,
    else ``cpu``.

    A device this machine does not have raises :class:`ConfigError` naming the key, before
    any model is loaded (the config check cannot know: on a cluster it runs on the login
    node, the job on a GPU node).

    Example:
        >>> from adapterflow.eval.runtime import pick_device
        >>> pick_device({"device": "auto"}) in ("cpu", "cuda")
        True
    """
    import platform

    import torch

    requested = evaluation.get("device") or "auto"
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    host = platform.node() or "this machine"
    if requested.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(requested.partition(":")[2] or 0)
        if index >= count:
            has = f"{count} CUDA device(s)" if count else "no CUDA device"
            raise ConfigError(
                f"evaluation.device: {requested!r}, but {host} has {has} (torch "
                f"{torch.__version__}); use auto or cpu, or run the job where a GPU is"
            )
    elif requested == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"evaluation.device: 'mps', but {host} has no MPS device; use auto")
    return requested

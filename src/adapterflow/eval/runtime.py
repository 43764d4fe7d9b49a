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
    """The ``evaluation`` block's ``device``, else ``cuda`` when available, else ``cpu``."""
    import torch

    return evaluation.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")

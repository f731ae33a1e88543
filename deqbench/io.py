"""Atomic, deterministic file writing and safe loading.

Every result file is written to a temporary name in its folder and renamed into
place, so a killed job never leaves a half-written file behind.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import torch


def write_bytes_atomic(data: bytes, path: str | Path) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_torch(obj: object, path: str | Path) -> None:
    """``torch.save`` into memory then atomically to disk (same object, same bytes)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes_atomic(buffer.getvalue(), path)


def load_torch(path: str | Path, map_location: str | torch.device = "cpu") -> object:
    """Load a file written by :func:`save_torch`, refusing pickled code."""
    return torch.load(path, map_location=map_location, weights_only=True)


def write_json(obj: object, path: str | Path) -> None:
    """Atomically write pretty, key-sorted JSON."""
    text = json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"
    write_bytes_atomic(text.encode(), path)


def read_json(path: str | Path) -> dict:
    with open(path) as handle:
        return json.load(handle)

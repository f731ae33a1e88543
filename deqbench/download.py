"""Verified downloads of real datasets.

A file is fetched to ``<target>.part`` (resuming with an HTTP ``Range`` request when a
partial file exists), its size is checked when one is pinned (a short file is kept for a
resume), its digest (sha256 unless another ``hashlib`` algorithm is named)
is checked against the pinned value, and only then is it renamed to ``<target>``. A
mismatch removes the bad file and raises :class:`DownloadError` naming the URL and both
digests.
"""

from __future__ import annotations

import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from deqbench.provenance import file_digest

CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download failed or its content is not the pinned one."""


def download(url: str, target: str | Path, digest: str, algorithm: str = "sha256",
             size: int | None = None, timeout: float = 60.0) -> Path:
    """Fetch ``url`` to ``target`` unless a file with the pinned ``digest`` is there."""
    target = Path(target)
    if target.exists():
        if file_digest(target, algorithm) == digest:
            return target
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    offset = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            # 206 continues the partial file; 200 means the server sent it whole again.
            mode = "ab" if offset and response.status == 206 else "wb"
            with open(partial, mode) as handle:
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    handle.write(chunk)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # the partial file is already complete
            pass
        else:
            raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        raise DownloadError(f"{url}: {err} (the partial file {partial} is kept for a resume)") from None
    received = partial.stat().st_size
    if size is not None and received < size:
        raise DownloadError(f"{url}: incomplete, {received} of {size} bytes (the partial file "
                            f"{partial} is kept for a resume)")
    found = file_digest(partial, algorithm)
    if found != digest:
        partial.unlink()
        raise DownloadError(f"{url}: {algorithm} mismatch, expected {digest}, got {found}; "
                            "the file was removed")
    os.replace(partial, target)
    return target

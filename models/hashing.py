"""Atomic file writing (re-exported from :mod:`ichpipe.atomic`) and file hashing for model files.

A checkpoint or exported model is written to a temporary file in the target
folder, flushed to disk and renamed over the target with :func:`os.replace`,
so a crash never leaves a half-written file under the final name.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection

from ichpipe.atomic import atomic_write
from ichpipe.errors import CheckpointError

__all__ = ["atomic_write", "file_sha256", "require_allowlisted", "verified_file_sha256"]


def file_sha256(path: str | os.PathLike[str], *, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, as 64 lowercase hex digits.

    This is the ``checkpoint_sha256`` of the study report.

    Parameters
    ----------
    path:
        The file.
    chunk_size:
        Bytes read at a time.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> tmp = tempfile.TemporaryDirectory()
    >>> p = pathlib.Path(tmp.name) / "empty"
    >>> _ = p.write_bytes(b"")
    >>> file_sha256(p)[:16]
    'e3b0c44298fc1c14'
    >>> tmp.cleanup()
    """
    if chunk_size < 1:
        raise ValueError(f"Argument 'chunk_size' must be positive; got {chunk_size}.")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def require_allowlisted(path: str | os.PathLike[str], allowlist: Collection[str], *, what: str = "Checkpoint"
                        ) -> str:
    """:func:`file_sha256` of ``path``, refused unless ``models.checkpoint_sha256_allowlist`` holds it.

    Raises
    ------
    ichpipe.errors.CheckpointError
        If the digest is not in ``allowlist`` (the message starts with ``what`` and names the file).
    """
    digest = file_sha256(path)
    if digest not in allowlist:
        raise CheckpointError(
            f"{what} {path} (SHA-256 {digest}) is not in models.checkpoint_sha256_allowlist;"
            " add its digest to the config if you trust it."
        )
    return digest


def verified_file_sha256(path: str | os.PathLike[str], expected: str | None) -> str:
    """:func:`file_sha256` of a model file, refused unless it equals ``expected`` (any case) when one is given.

    Raises
    ------
    ichpipe.errors.CheckpointError
        If the digest differs from ``expected``.
    """
    sha = file_sha256(path)
    if expected is not None and sha != expected.strip().lower():
        raise CheckpointError(
            f"Checkpoint '{path}' has SHA-256 {sha}, not the expected {expected}; the file was changed or is the"
            " wrong one; fetch the published checkpoint again."
        )
    return sha

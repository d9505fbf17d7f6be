"""Configuration of the results store (the ``store:`` section of ``config.yaml``).

Kept apart from :mod:`ichpipe.pipeline.serial.store` so that loading the configuration does not
import SQLAlchemy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["StoreConfig"]


@dataclass(frozen=True)
class StoreConfig:
    """Where measured volumes are recorded and how concurrent writers wait.

    Parameters
    ----------
    url:
        SQLAlchemy database URL (``postgresql+psycopg://user@host/ichpipe``,
        ``sqlite:////abs/path.sqlite``). ``None`` means an SQLite file at ``path``.
    path:
        SQLite file used when ``url`` is ``None``; relative paths are relative
        to the working directory. Its folder is created on first write.
    busy_timeout_s:
        How long one SQLite statement waits for another writer's lock.
    retries:
        How many times a write transaction that still met a lock (or, on
        PostgreSQL, a serialization failure) is retried, with growing pauses,
        before the command fails.
    """

    url: str | None = None
    path: str = "ichpipe-out/ichpipe.sqlite"
    busy_timeout_s: float = 30.0
    retries: int = 8

    def __post_init__(self) -> None:
        if self.url is not None and not self.url.strip():
            raise ValueError("store.url must be a database URL or null (SQLite at store.path).")
        if self.url is not None and "://" not in self.url:
            raise ValueError(
                f"store.url '{self.url}' is not a database URL (dialect://...); "
                "to use an SQLite file set store.path instead."
            )
        if self.url is None and not self.path.strip():
            raise ValueError("store.path must name an SQLite file when store.url is null.")
        if not math.isfinite(self.busy_timeout_s) or self.busy_timeout_s <= 0:
            raise ValueError(f"store.busy_timeout_s must be a positive number of seconds; got {self.busy_timeout_s}.")
        if self.retries < 0:
            raise ValueError(f"store.retries must be 0 or more; got {self.retries}.")

    @classmethod
    def from_location(cls, location: str, *, base: StoreConfig | None = None) -> StoreConfig:
        """Return ``base`` pointed at ``location``: a URL when it holds ``://``, else an SQLite path."""
        base = base or cls()
        if "://" in location:
            return cls(url=location, path=base.path, busy_timeout_s=base.busy_timeout_s, retries=base.retries)
        return cls(url=None, path=location, busy_timeout_s=base.busy_timeout_s, retries=base.retries)

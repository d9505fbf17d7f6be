"""``ichpipe batch`` and ``ichpipe watch``: every study of an inbox, incrementally, safely.

Modules (import the one you need; this package itself stays light so that
loading the configuration does not import Dask or SQLAlchemy):

- :mod:`ichpipe.pipeline.config.batch_config` -- the ``batch:`` config section.
- :mod:`ichpipe.pipeline.batch.options` -- :class:`BatchOptions`, the frozen options of a run.
- :mod:`ichpipe.pipeline.batch.inbox` -- finding studies in the inbox; the settle time.
- :mod:`ichpipe.pipeline.batch.ledger` -- fingerprints, config hash, the ledger table.
- :mod:`ichpipe.pipeline.batch.locks` -- per-series ``flock`` locks.
- :mod:`ichpipe.pipeline.batch.runner` -- :func:`run_batch`, in-process, process-pool and Dask executors.
- :mod:`ichpipe.pipeline.batch.summary` -- outcomes, the run report (exit code), CSV/JSON summaries.
"""

from ichpipe.pipeline.batch.options import BatchOptions

__all__ = ["BatchOptions"]

"""Stage ``batch``: every study of an inbox, incrementally and safely; ``ichpipe watch``; PACS.

Modules (import the one you need; this package itself stays light so that
loading the configuration does not import Dask or SQLAlchemy):

- :mod:`~ichpipe.pipeline.batch.options` -- :class:`BatchOptions`, the frozen options of a run;
- :mod:`~ichpipe.pipeline.batch.inbox` -- finding studies in the inbox; the settle time;
- :mod:`~ichpipe.pipeline.batch.case_list` -- ``batch --list``: the cases of a CSV (NIfTI files, study folders);
- :mod:`~ichpipe.pipeline.batch.ledger` -- fingerprints, config hash, the ledger table;
- :mod:`~ichpipe.pipeline.batch.locks` -- per-series ``flock`` locks;
- :mod:`~ichpipe.pipeline.batch.runner` -- :func:`run_batch`: plan, run, summarise;
- :mod:`~ichpipe.pipeline.batch.worker` -- one study: lock, ledger, ``run``, publish, deliver;
- :mod:`~ichpipe.pipeline.batch.executors` -- in-process, process-pool and Dask executors;
- :mod:`~ichpipe.pipeline.batch.summary` -- outcomes, the run report (exit code), CSV/JSON summaries;
- :mod:`~ichpipe.pipeline.batch.watch` -- ``ichpipe watch``, a polling service;
- :mod:`~ichpipe.pipeline.batch.pacs` -- C-STORE delivery, C-FIND and C-MOVE/C-GET retrieval.

The ``batch:`` and ``pacs:`` config sections are in :mod:`ichpipe.pipeline.config`.
May import every stage that a study goes through (``jobs``, ``serial``);
Dask and pynetdicom only when used (extras ``[dask]`` and ``[pacs]``).
"""

from ichpipe.pipeline.batch.options import BatchOptions

__all__ = ["BatchOptions"]

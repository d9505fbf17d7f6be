"""Stage ``serial``: a patient's scans over time, and whether the hematoma expanded.

- :mod:`~ichpipe.pipeline.serial.store`: the results store (one row per measured
  series, one per patient's clinical data; SQLite or any SQLAlchemy URL,
  versioned schema);
- :mod:`~ichpipe.pipeline.serial.timeline`: linking a patient's scans (accession
  number, time from onset);
- :mod:`~ichpipe.pipeline.serial.expansion`: the expansion rule and its presets,
  evaluated per patient;
- :mod:`~ichpipe.pipeline.serial.timeline_import` with
  :mod:`~ichpipe.pipeline.serial.import_mappings` and the shipped ``mappings/``:
  volumes measured elsewhere (CSV tables) into the store;
- :mod:`~ichpipe.pipeline.serial.clinical`: the clinical schema of the predictor
  and mappings to it;
- :mod:`~ichpipe.pipeline.serial.timeline_reports` and
  :mod:`~ichpipe.pipeline.serial.timeline_plot`: the jobs behind ``ichpipe
  timeline`` and ``ichpipe expansion``, and the timeline plot.

May import :mod:`ichpipe.pipeline.config`; never torch, the segmentation or
the command line. Nothing is imported here: :mod:`~ichpipe.pipeline.serial.expansion`
is read by the configuration and must stay free of SQLAlchemy.
"""

__all__: list[str] = []

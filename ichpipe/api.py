"""The Python API: one function per thing a notebook or a script wants, beside the command line.

Everything here is reachable as ``ichpipe.<name>`` (``import ichpipe`` itself
imports nothing heavy: these names load on first use, and torch loads only
when a network is built):

- :func:`run_study` -- the main job on one study; returns the report **and**
  the mask, the HU volume and the geometry, and writes no file and no store
  row unless asked;
- :func:`load_segmenter` -- build a segmenter once and pass it to many
  :func:`run_study` calls (a network loads its checkpoint once);
- :func:`inspect_study` -- every series found, the one selected and why;
- :func:`measure_mask` -- volume and ABC/2 of an existing mask file;
- :func:`load_config` -- the configuration: defaults < a YAML file < keyword overrides.

Each is a thin shell over :mod:`ichpipe.pipeline.jobs`, the same code the
commands run; errors are :class:`ichpipe.errors.IchpipeError` subclasses whose
messages say what was wrong and what to do.

The README's "Python API" section has a worked example (run by the tests);
each function's docstring has a small one (run as a doctest).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from ichpipe.dicom_io.assemble import CTVolume
    from ichpipe.dicom_io.geometry import VolumeGeometry
    from ichpipe.pipeline.config import Config
    from ichpipe.pipeline.config.inference_config import Device
    from ichpipe.pipeline.jobs.run_study import StudyAnalysis
    from ichpipe.pipeline.segment import Segmenter

__all__ = ["StudyResult", "inspect_study", "load_config", "load_segmenter", "measure_mask", "run_study"]

PathOrStr = str | Path


@dataclass(frozen=True)
class StudyResult:
    """What :func:`run_study` measured on one study.

    Attributes
    ----------
    report:
        The study report (the ``ichpipe run --json`` contract: identity,
        geometry, hematoma, segmenter, outputs, timings, warnings...);
        de-identified when ``outputs.deidentify`` is set.
    mask:
        Boolean hematoma mask, shape (slices, rows, columns), slices sorted
        along the normal as in :attr:`hu`.
    hu:
        float32 Hounsfield units of the selected series, same shape.
    geometry:
        Positions, spacing along the normal, each slice's thickness, tilt,
        gaps (:class:`ichpipe.dicom_io.geometry.VolumeGeometry`).
    series:
        The assembled series with its headers (:class:`ichpipe.dicom_io.assemble.CTVolume`),
        e.g. to write a DICOM SEG of an edited mask with :func:`ichpipe.dicom_io.seg.write_seg`.
        Its headers hold patient identifiers even when the report is de-identified
        (a NIfTI input has no headers).
    output_dir:
        Where the files went; ``None`` when none were written.
    """

    report: dict[str, Any]
    mask: np.ndarray
    hu: np.ndarray
    geometry: VolumeGeometry
    series: CTVolume
    output_dir: Path | None

    @property
    def volume_ml(self) -> float:
        """Hematoma volume in mL (planimetric, each slice's own thickness along the normal)."""
        return float(self.report["hematoma"]["volume_ml"])

    @property
    def abc2_ml(self) -> float:
        """The automated ABC/2 estimate in mL."""
        return float(self.report["hematoma"]["abc2_ml"])

    @classmethod
    def _from(cls, report: dict[str, Any], analysis: StudyAnalysis, output_dir: Path | None) -> StudyResult:
        volume = analysis.volume
        return cls(report=report, mask=analysis.mask, hu=volume.hu, geometry=volume.geometry, series=volume,
                   output_dir=output_dir)


def load_config(path: PathOrStr | None = None, **overrides: Mapping[str, Any]) -> Config:
    """The configuration: built-in defaults < the YAML file ``path`` < ``overrides``.

    Parameters
    ----------
    path:
        A YAML file like the repository's ``config.yaml`` (only the keys to
        change); ``None`` uses ``$ICHPIPE_CONFIG`` when set, else the defaults.
    **overrides:
        Sections to change, each a mapping of keys, e.g.
        ``outputs={"deidentify": True}``.

    Returns
    -------
    ichpipe.pipeline.config.Config
        The frozen, validated configuration.

    Raises
    ------
    ichpipe.errors.ConfigError
        For an unknown section or key, or a value of the wrong type (the message names it).

    Examples
    --------
    >>> import ichpipe
    >>> cfg = ichpipe.load_config(geometry={"gap_factor": 2.0})
    >>> cfg.geometry.gap_factor, cfg.outputs.seg
    (2.0, True)
    """
    from ichpipe.pipeline.config import load_config as load

    return load(None if path is None else Path(path), overrides=overrides)


def load_segmenter(
    name: str | None = None,
    *,
    checkpoint: PathOrStr | None = None,
    device: Device | None = None,
    config: Config | None = None,
) -> Segmenter:
    """Build a segmenter once, to pass to many :func:`run_study` calls.

    Parameters
    ----------
    name:
        ``"threshold"`` (the classical HU-band method) or a registered network
        (``ichpipe run --help`` lists them); ``None`` uses ``models.default_segmenter``.
    checkpoint:
        A network's checkpoint; ``None`` uses ``models.default_checkpoint`` (the shipped one).
    device:
        ``"auto"``, ``"cpu"`` or ``"cuda"``; ``None`` uses ``inference.device``.
    config:
        The configuration (:func:`load_config`); ``None`` for the defaults.

    Raises
    ------
    ichpipe.errors.UsageError
        For an unknown segmenter name.
    ichpipe.errors.CheckpointError
        When a network has no usable checkpoint.

    Examples
    --------
    >>> import ichpipe
    >>> ichpipe.load_segmenter("threshold").describe()["name"]
    'threshold'
    """
    from ichpipe.pipeline.jobs.run_study import RunOptions, build_segmenter

    cfg = _config(config)
    options = RunOptions(study=Path("."), segmenter=name, checkpoint=None if checkpoint is None else Path(checkpoint),
                         device=device)
    return build_segmenter(options, cfg)


def run_study(
    study: PathOrStr,
    *,
    config: Config | PathOrStr | None = None,
    segmenter: str | Segmenter | None = None,
    checkpoint: PathOrStr | None = None,
    device: Device | None = None,
    write: bool = False,
    out: PathOrStr | None = None,
    record: bool | None = None,
) -> StudyResult:
    """Segment and measure the hematoma of one study; write files only when asked.

    Parameters
    ----------
    study:
        Study folder, DICOMDIR or ``.zip``; the axial CT series is selected by
        the same rules as ``ichpipe run`` (:func:`inspect_study` says why). Or
        a NIfTI CT (``.nii``, ``.nii.gz``), its geometry from the header.
    config:
        A :class:`~ichpipe.pipeline.config.Config` (:func:`load_config`), a
        YAML file, or ``None`` for the defaults.
    segmenter:
        A name (``"threshold"`` or a registered network), a segmenter built
        by :func:`load_segmenter` (reuse it across studies), or ``None`` for
        ``models.default_segmenter``.
    checkpoint:
        A network's checkpoint when ``segmenter`` is a name or ``None``.
    device:
        ``"auto"``, ``"cpu"`` or ``"cuda"`` when ``segmenter`` is a name or ``None``.
    write:
        Write the outputs ``config.outputs`` asks for (DICOM SEG, key image,
        Secondary Capture, SR, NIfTI, ``report.json``...) to ``out``, or to
        ``outputs.directory`` when ``out`` is ``None``. Giving ``out`` implies
        ``write``.
    out:
        Output root; the files go to ``out/<StudyInstanceUID>/<SeriesInstanceUID>/``.
    record:
        Record the measurement in the results store (``store`` section);
        ``None`` records when files are written and ``outputs.record_in_store``
        is set, never otherwise.

    Returns
    -------
    StudyResult
        The report, the mask, the HU volume, the geometry and where the files went.

    Raises
    ------
    ichpipe.errors.IchpipeError
        Any failure (no series to select, unreadable files, a missing checkpoint,
        an output that cannot be written...), with a message saying what to do.
    ValueError
        If ``checkpoint`` or ``device`` is given with a built segmenter.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import ichpipe
    >>> from ichpipe.pipeline.synthetic.phantom import PhantomSpec, write_phantom_study
    >>> tmp = Path(tempfile.mkdtemp())
    >>> truth = write_phantom_study(tmp / "study", PhantomSpec(seed=2, rows=64, columns=64, n_slices=12))
    >>> config = ichpipe.load_config(outputs={"secondary_capture": False})
    >>> result = ichpipe.run_study(tmp / "study", config=config, segmenter="threshold", out=tmp / "out",
    ...                            record=False)
    >>> sorted(p.name for p in result.output_dir.iterdir())
    ['key_image.png', 'report.json', 'seg.dcm', 'sr.dcm']
    >>> import shutil; shutil.rmtree(tmp)
    """
    from ichpipe.pipeline.jobs import run_study as job
    from ichpipe.pipeline.outputs.report import StageTimer

    cfg = _config(config)
    seg: Segmenter | None = None
    name: str | None = None
    if segmenter is None or isinstance(segmenter, str):
        name = segmenter
    elif checkpoint is not None or device is not None:
        raise ValueError("Arguments 'checkpoint' and 'device' apply to a segmenter given by name, not a built one.")
    else:
        seg = segmenter
    options = job.RunOptions(
        study=Path(study),
        out=None if out is None else Path(out),
        segmenter=name,
        checkpoint=None if checkpoint is None else Path(checkpoint),
        device=device,
    )
    if write or out is not None:
        if record is not None:
            cfg = replace(cfg, outputs=replace(cfg.outputs, record_in_store=record))
        ran = job.run_study(options, cfg, segmenter=seg)
        return StudyResult._from(ran.report, ran.analysis, ran.output_dir)
    timer = StageTimer()
    with timer.stage("load_model"):
        seg = seg or job.build_segmenter(options, cfg)
    analysis = job.analyse_study(options, cfg, segmenter=seg, timer=timer)
    report = job.study_report(analysis, cfg, record=bool(record))
    return StudyResult._from(report, analysis, None)


def inspect_study(study: PathOrStr, *, config: Config | PathOrStr | None = None) -> list[dict[str, Any]]:
    """Every series of a study: the one selected, each rule's verdict, its geometry.

    Parameters
    ----------
    study:
        Study folder, DICOMDIR or ``.zip``.
    config:
        A :class:`~ichpipe.pipeline.config.Config`, a YAML file, or ``None`` for the defaults.

    Returns
    -------
    list of dict
        One item per series, as ``ichpipe inspect --json`` prints them
        (``series_instance_uid``, ``selected``, ``reasons``, ``n_slices``,
        ``slice_spacing_mm`` along the normal, ``gantry_tilt_deg``,
        ``missing_slices``, ``warnings``...).

    Raises
    ------
    ichpipe.errors.IchpipeError
        If the study cannot be read.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import ichpipe
    >>> from ichpipe.pipeline.synthetic.phantom import PhantomSpec, write_phantom_study
    >>> tmp = tempfile.TemporaryDirectory()
    >>> spec = PhantomSpec(seed=3, rows=64, columns=64, n_slices=12, distractors=("localizer",))
    >>> _ = write_phantom_study(Path(tmp.name), spec)
    >>> [(s["n_slices"], s["selected"]) for s in ichpipe.inspect_study(tmp.name)]
    [(12, True), (1, False)]
    >>> tmp.cleanup()
    """
    from ichpipe.pipeline.jobs.inspect_study import inspect_study as inspect

    return inspect(Path(study), _config(config)).series


def measure_mask(
    mask: PathOrStr, *, study: PathOrStr | None = None, config: Config | PathOrStr | None = None
) -> dict[str, Any]:
    """Volume and ABC/2 of an existing mask (NIfTI or DICOM SEG) on a study's geometry.

    Parameters
    ----------
    mask:
        ``.nii``/``.nii.gz`` or a DICOM SEG file.
    study:
        The study the mask belongs to (its series is selected and assembled as
        by :func:`run_study`); ``None`` measures a NIfTI on its own header
        geometry (one slice step, so approximate for tilted or uneven stacks).
    config:
        A :class:`~ichpipe.pipeline.config.Config`, a YAML file, or ``None`` for the defaults.

    Returns
    -------
    dict
        The study report (``ichpipe measure --json``).

    Raises
    ------
    ichpipe.errors.IchpipeError
        An unreadable mask or study, or a mask that fits no series of the study.
    """
    from ichpipe.pipeline.jobs.measure_mask import measure_mask as measure

    return measure(Path(mask), study=None if study is None else Path(study), config=_config(config)).report


def _config(config: Config | PathOrStr | None) -> Config:
    """``config`` as a Config: a path is loaded, ``None`` gives :func:`load_config`'s defaults."""
    from ichpipe.pipeline.config import Config

    if isinstance(config, Config):
        return config
    if config is not None and not isinstance(config, str | Path):
        raise ValueError(f"Argument 'config' must be a Config, a YAML file path or None; got {type(config).__name__}.")
    return load_config(config)

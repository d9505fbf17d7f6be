"""Whether the quality flags catch the wrong volumes: ``ichpipe evaluate --flags``.

A clinical tool may fail on a study, but it may never print a wrong number
as if it were right. With ``--flags`` every case in HU is run through the
same checks as ``ichpipe run`` (:func:`~ichpipe.pipeline.jobs.analyse_volume.analyse_volume`),
and each segmenter's cases are counted four ways against the reference
volume:

- **wrong and flagged**: the error is beyond the tolerance and at least one
  flag was raised (the user is told not to trust the number);
- **silent**: the error is beyond the tolerance and no flag was raised -- the
  failure this module exists to count;
- **right**, flagged or not (a flag on a right volume is a false alarm).

A volume is *wrong* when its error is at least ``error_ml`` **and** at least
``error_share`` of the true volume (:class:`WrongVolume`), so that a 0.3 mL
miss is not counted and neither is 1.5 mL on a 60 mL haematoma.

Examples
--------
>>> tol = WrongVolume(error_ml=1.0, error_share=0.25)
>>> tol.is_wrong(predicted_ml=6.0, true_ml=10.0), tol.is_wrong(predicted_ml=9.0, true_ml=10.0)
(True, False)
>>> tol.is_wrong(predicted_ml=0.0, true_ml=0.8)  # under 1 mL: not counted
False
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ichpipe.pipeline.evaluation.evaluate import CaseResult

__all__ = ["FlagScore", "WrongVolume", "flags_markdown", "parse_wrong_volume", "score_flags"]


@dataclass(frozen=True)
class WrongVolume:
    """When a measured volume counts as wrong against the reference.

    Attributes
    ----------
    error_ml:
        Least absolute error, in mL.
    error_share:
        Least error as a share of the true volume (0.25: 25 %).
    """

    error_ml: float = 1.0
    error_share: float = 0.25

    def __post_init__(self) -> None:
        if not (math.isfinite(self.error_ml) and self.error_ml > 0):
            raise ValueError(f"Argument 'error_ml' must be a positive number of mL; got {self.error_ml!r}.")
        if not (math.isfinite(self.error_share) and self.error_share >= 0):
            raise ValueError(f"Argument 'error_share' must be a share >= 0; got {self.error_share!r}.")

    def is_wrong(self, *, predicted_ml: float, true_ml: float) -> bool:
        """Whether ``predicted_ml`` is off ``true_ml`` by both the absolute and the relative limit."""
        error = abs(predicted_ml - true_ml)
        return error >= self.error_ml and error >= self.error_share * true_ml

    def text(self) -> str:
        """``>= 1.0 mL and >= 25 % of the true volume``."""
        return f">= {self.error_ml:g} mL and >= {100 * self.error_share:g} % of the true volume"


def parse_wrong_volume(text: str) -> WrongVolume:
    """``"ML,SHARE"`` (e.g. ``"1.0,0.25"``) as a :class:`WrongVolume`.

    Raises
    ------
    ValueError
        If ``text`` is not two numbers separated by a comma, or they are out of range.
    """
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2:
        raise ValueError(f"Argument 'text' must be ML,SHARE (e.g. 1.0,0.25); got {text!r}.")
    try:
        error_ml, share = float(parts[0]), float(parts[1])
    except ValueError as exc:
        raise ValueError(f"Argument 'text' must be two numbers, ML,SHARE; got {text!r}.") from exc
    return WrongVolume(error_ml=error_ml, error_share=share)


@dataclass(frozen=True)
class FlagScore:
    """How one segmenter's flags matched its wrong volumes.

    Attributes
    ----------
    model:
        Row label.
    n_cases:
        Cases the quality checks ran on (HU cases; PNG slices have none).
    n_wrong, n_wrong_flagged:
        Cases with a wrong volume, and of those the flagged ones.
    n_right_flagged:
        Cases with a right volume that were flagged anyway (false alarms).
    silent:
        ``(case_id, true_ml, predicted_ml)`` of every wrong volume with no flag.
    by_code:
        Per flag code: ``(on wrong volumes, on right volumes, the only flag of a wrong volume)``,
        in the order the codes were first seen.
    """

    model: str
    n_cases: int
    n_wrong: int
    n_wrong_flagged: int
    n_right_flagged: int
    silent: tuple[tuple[str, float, float], ...]
    by_code: Mapping[str, tuple[int, int, int]] = field(default_factory=dict)

    @property
    def n_silent(self) -> int:
        """Wrong volumes with no flag."""
        return self.n_wrong - self.n_wrong_flagged

    @property
    def n_right(self) -> int:
        """Cases whose volume is within the tolerance."""
        return self.n_cases - self.n_wrong


def score_flags(results: Sequence[CaseResult], *, tolerance: WrongVolume | None = None) -> list[FlagScore]:
    """Count wrong, flagged and silent volumes per segmenter (cases without flags, ``flags is None``, skipped).

    Parameters
    ----------
    results:
        Per-case results of :func:`~ichpipe.pipeline.evaluation.evaluate.evaluate_cases` run with ``quality``.
    tolerance:
        When a volume is wrong (default: :class:`WrongVolume`'s).

    Returns
    -------
    list of FlagScore
        One per segmenter with at least one case that has flags, in the results' order.
    """
    tol = tolerance or WrongVolume()
    scores: list[FlagScore] = []
    for model in dict.fromkeys(r.model for r in results):
        cases = [r for r in results if r.model == model and r.flags is not None]
        if not cases:
            continue
        is_wrong = [tol.is_wrong(predicted_ml=r.predicted_ml, true_ml=r.true_ml) for r in cases]
        wrong = [r for r, w in zip(cases, is_wrong, strict=True) if w]
        right = [r for r, w in zip(cases, is_wrong, strict=True) if not w]
        by_code: dict[str, list[int]] = {}
        for r, w in zip(cases, is_wrong, strict=True):
            codes = list(dict.fromkeys(r.flags or ()))
            for code in codes:
                counts = by_code.setdefault(code, [0, 0, 0])
                counts[0 if w else 1] += 1
                counts[2] += int(w and len(codes) == 1)
        scores.append(FlagScore(
            model=model, n_cases=len(cases), n_wrong=len(wrong),
            n_wrong_flagged=sum(bool(r.flags) for r in wrong),
            n_right_flagged=sum(bool(r.flags) for r in right),
            silent=tuple((r.case_id, r.true_ml, r.predicted_ml) for r in wrong if not r.flags),
            by_code={code: (c[0], c[1], c[2]) for code, c in by_code.items()},
        ))
    return scores


def flags_markdown(scores: Sequence[FlagScore], *, tolerance: WrongVolume | None = None) -> str:
    """A Markdown section: per segmenter, wrong volumes flagged and silent, false alarms, and each silent case."""
    tol = tolerance or WrongVolume()
    lines = ["## Quality flags against wrong volumes", "",
             f"A volume is wrong when its error is {tol.text()}; flagged: `ichpipe run` would raise at least one"
             " quality flag on the case.", "",
             "| Model | cases | wrong | wrong, flagged | **wrong, silent** | right, flagged (false alarm) |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {s.model} | {s.n_cases} | {s.n_wrong} | {s.n_wrong_flagged} | **{s.n_silent}** |"
              f" {s.n_right_flagged}/{s.n_right} |" for s in scores]
    if any(s.by_code for s in scores):
        lines += ["", "Each flag: on wrong volumes, on right volumes (false alarms), the only flag of a wrong volume.",
                  "", "| Model | flag | on wrong | on right | only flag of a wrong |", "|---|---|---:|---:|---:|"]
        lines += [f"| {s.model} | `{code}` | {w} | {r} | {only} |"
                  for s in scores for code, (w, r, only) in s.by_code.items()]
    silent = [(s.model, case) for s in scores for case in s.silent]
    if silent:
        lines += ["", "Silent wrong volumes (true -> read, mL):", ""]
        lines += [f"- {model}: {cid} {true:.2f} -> {read:.2f}" for model, (cid, true, read) in silent]
    lines.append("")
    return "\n".join(lines)

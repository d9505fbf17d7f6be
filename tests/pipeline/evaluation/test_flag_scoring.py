"""Counting wrong volumes that the quality flags caught and those they did not (``evaluate --flags``)."""

from __future__ import annotations

import pytest

from ichpipe.pipeline.evaluation import cases_csv
from ichpipe.pipeline.evaluation.evaluate import CaseResult
from ichpipe.pipeline.evaluation.flag_scoring import (
    WrongVolume,
    flags_markdown,
    parse_wrong_volume,
    score_flags,
)


def _case(case_id: str, true_ml: float, read_ml: float, flags: tuple[str, ...] | None,
          model: str = "net") -> CaseResult:
    return CaseResult(case_id=case_id, patient_id=case_id, source="phantom:test", model=model, dice=0.5, iou=0.3,
                      rvd=0.0, true_ml=true_ml, predicted_ml=read_ml, abc2_ml=read_ml, true_abc2_ml=true_ml,
                      seconds=1.0, flags=flags)


def test_a_volume_is_wrong_only_beyond_both_limits() -> None:
    tol = WrongVolume(error_ml=1.0, error_share=0.25)
    assert tol.is_wrong(predicted_ml=0.0, true_ml=10.0)
    assert tol.is_wrong(predicted_ml=12.5, true_ml=10.0)  # exactly 25 % and >= 1 mL
    assert not tol.is_wrong(predicted_ml=12.4, true_ml=10.0)  # 24 %
    assert not tol.is_wrong(predicted_ml=0.0, true_ml=0.9)  # all of it, but under 1 mL
    assert not tol.is_wrong(predicted_ml=58.0, true_ml=60.0)  # 2 mL, 3 %
    assert tol.is_wrong(predicted_ml=1.2, true_ml=0.0)  # blood called in a normal head


def test_wrong_volume_arguments_are_checked() -> None:
    assert parse_wrong_volume(" 2 , 0.5") == WrongVolume(error_ml=2.0, error_share=0.5)
    with pytest.raises(ValueError, match="'error_ml'"):
        WrongVolume(error_ml=0.0)
    with pytest.raises(ValueError, match="'error_share'"):
        WrongVolume(error_share=-0.1)
    with pytest.raises(ValueError, match="ML,SHARE"):
        parse_wrong_volume("1.0")
    with pytest.raises(ValueError, match="two numbers"):
        parse_wrong_volume("one,0.25")


def test_score_flags_counts_caught_silent_and_false_alarms() -> None:
    results = [
        _case("miss-flagged", 10.0, 2.0, ("low_density_blood",)),
        _case("miss-flagged-twice", 10.0, 2.0, ("low_density_blood", "uncertain_edge")),
        _case("miss-silent", 10.0, 0.0, ()),
        _case("right-flagged", 10.0, 9.5, ("noisy_image",)),
        _case("right", 5.0, 5.2, ()),
        _case("normal-overcall", 0.0, 3.0, ()),
        _case("png-slices", 10.0, 0.0, None),  # no checks ran: not counted
        _case("miss-silent", 10.0, 9.9, (), model="other"),
    ]
    net, other = score_flags(results)
    assert (net.model, net.n_cases, net.n_wrong, net.n_wrong_flagged, net.n_silent) == ("net", 6, 4, 2, 2)
    assert (net.n_right, net.n_right_flagged) == (2, 1)
    assert [cid for cid, _, _ in net.silent] == ["miss-silent", "normal-overcall"]
    assert (other.n_cases, other.n_wrong, other.n_silent) == (1, 0, 0)
    assert dict(net.by_code) == {"low_density_blood": (2, 0, 1), "uncertain_edge": (1, 0, 0), "noisy_image": (0, 1, 0)}
    text = flags_markdown([net, other])
    assert "| net | 6 | 4 | 2 | **2** | 1/2 |" in text
    assert "| net | `low_density_blood` | 2 | 0 | 1 |" in text and "| net | `noisy_image` | 0 | 1 | 0 |" in text
    assert "- net: miss-silent 10.00 -> 0.00" in text and "normal-overcall 0.00 -> 3.00" in text
    loose = score_flags(results, tolerance=WrongVolume(error_ml=5.0, error_share=0.5))[0]
    assert (loose.n_wrong, loose.n_silent) == (3, 1)  # two 10 -> 2 (flagged), 10 -> 0; the 3 mL overcall is right


def test_cases_csv_tells_no_flag_from_checks_not_run() -> None:
    rows = cases_csv([_case("a", 1.0, 1.0, ()), _case("b", 1.0, 1.0, ("noisy_image", "uncertain_edge")),
                      _case("c", 1.0, 1.0, None)]).splitlines()
    header = rows[0].split(",")
    col = header.index("flags")
    assert [r.split(",")[col] for r in rows[1:]] == ["none", "noisy_image;uncertain_edge", ""]

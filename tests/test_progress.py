"""``ichpipe.progress``: stages report to the active display only; lines or bars on the display's stream."""

from __future__ import annotations

import io
import threading
import time

import pytest

from ichpipe.progress import ProgressDisplay, StageProgress, report_to, stage, track


class _Recorder:
    """A sink that records what it is told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, int, int, str | None]] = []

    def started(self, progress: StageProgress) -> None:
        self.events.append(("started", progress.name, progress.done, progress.total, progress.item))

    def advanced(self, progress: StageProgress) -> None:
        self.events.append(("advanced", progress.name, progress.done, progress.total, progress.item))

    def finished(self, progress: StageProgress) -> None:
        self.events.append(("finished", progress.name, progress.done, progress.total, progress.item))


def test_without_a_display_stages_count_and_show_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with stage("decoding slices", total=3) as progress:
        progress.advance(2)
        progress.advance(5)  # never past the total
    assert progress.done == 3
    assert capsys.readouterr() == ("", "")


def test_a_sink_receives_start_steps_items_and_end() -> None:
    recorder = _Recorder()
    with report_to(recorder):
        with stage("writing outputs", total=2) as progress:
            progress.working_on("seg.dcm")
            progress.advance()
            progress.advance(item="sr.dcm")
        assert list(track(["a", "b"], "selecting series")) == ["a", "b"]
    with stage("not reported", total=1) as progress:
        progress.advance()
    assert recorder.events[:5] == [
        ("started", "writing outputs", 0, 2, None),
        ("advanced", "writing outputs", 0, 2, "seg.dcm"),
        ("advanced", "writing outputs", 1, 2, None),
        ("advanced", "writing outputs", 2, 2, "sr.dcm"),
        ("finished", "writing outputs", 2, 2, "sr.dcm"),
    ]
    assert [e[:3] for e in recorder.events[5:]] == [
        ("started", "selecting series", 0), ("advanced", "selecting series", 1),
        ("advanced", "selecting series", 2), ("finished", "selecting series", 2),
    ]


def test_lines_mode_with_interval_zero_prints_every_step_and_the_end() -> None:
    out = io.StringIO()
    with ProgressDisplay(interval_s=0, tty=False, stream=out), stage("reading headers", total=2) as p:
        p.advance()
        p.advance()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("ichpipe: reading headers 0/2")
    assert lines[1].startswith("ichpipe: reading headers 1/2")
    assert lines[2].startswith("ichpipe: reading headers 2/2")
    assert lines[-1].startswith("ichpipe: reading headers 2/2 done in ")


def test_lines_mode_keeps_quiet_for_a_stage_faster_than_the_interval() -> None:
    out = io.StringIO()
    with ProgressDisplay(interval_s=3600, tty=False, stream=out), stage("reading headers", total=5) as p:
        for _ in range(5):
            p.advance()
    assert out.getvalue() == ""


def test_heartbeat_prints_while_one_item_takes_long() -> None:
    out = io.StringIO()
    release = threading.Event()
    with ProgressDisplay(interval_s=0.01, tty=False, stream=out, heartbeat_s=0.02), \
            stage("writing outputs", total=1) as p:
        p.working_on("seg.dcm")
        deadline = time.monotonic() + 30
        # no step is made: only the heartbeat can print the lines waited for here
        while out.getvalue().count("(seg.dcm)") < 3 and time.monotonic() < deadline:
            release.wait(0.01)
        p.advance()
    assert out.getvalue().count("ichpipe: writing outputs 0/1 (seg.dcm)") >= 3
    assert "writing outputs 1/1 done in" in out.getvalue()


def test_tty_mode_draws_a_bar_and_removes_it() -> None:
    out = io.StringIO()
    with ProgressDisplay(interval_s=0, tty=True, stream=out), stage("decoding slices", total=4) as p:
        for _ in range(4):
            p.advance()
    text = out.getvalue()
    assert "decoding slices:" in text and "/4 [" in text  # a tqdm bar
    assert text.rstrip(" ").endswith("\r")  # erased at the end (leave=False)
    assert "ichpipe: decoding slices" not in text  # bars, not lines


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="'total'"), stage("x", total=-1):
        pass
    with pytest.raises(ValueError, match="'name'"), stage("", total=1):
        pass
    with pytest.raises(ValueError, match="'interval_s'"):
        ProgressDisplay(interval_s=float("nan"))
    with pytest.raises(ValueError, match="'heartbeat_s'"):
        ProgressDisplay(heartbeat_s=0)


def test_the_display_is_active_only_inside_its_block() -> None:
    out = io.StringIO()
    with ProgressDisplay(interval_s=0, tty=False, stream=out):
        pass
    with stage("reading headers", total=1) as p:
        p.advance()
    assert out.getvalue() == ""

"""Fixtures of the hardening tests and the end-of-run summary of the corpus and fuzz counts.

The bad-input corpus and the fuzz tests record every case they try in a
:class:`HardeningStats` kept in the pytest config; ``pytest_terminal_summary``
prints, whatever ``-q``/``-s`` say::

    bad-input corpus: N cases, E clear errors, W read with warnings, 0 crashes
    fuzz: N examples (hypothesis), E project errors, 0 unexpected exceptions, T s

A crash or an unexpected exception also fails its own test; the summary is
for the record (the counts go to the lead's notes).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hardening_corpus import HardeningStats, good_phantom

STATS = pytest.StashKey[HardeningStats]()


@pytest.fixture(scope="session")
def hardening_stats(pytestconfig: pytest.Config) -> HardeningStats:
    """The session's counters (kept in the config so the summary hook finds them)."""
    return pytestconfig.stash.setdefault(STATS, HardeningStats())


@pytest.fixture(scope="session")
def good_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12-slice 32x32 phantom study with a distinctive patient identity (do not modify: copy it)."""
    return good_phantom(tmp_path_factory.mktemp("good") / "study")


@pytest.fixture
def store_config(tmp_path: Path) -> Iterator[Path]:
    """A config file whose results store lives in the test's temporary folder."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"store:\n  path: {tmp_path / 'store.sqlite'}\n")
    yield cfg


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    """Print the corpus and fuzz counts (nothing when no hardening test ran)."""
    stats = config.stash.get(STATS, None)
    if stats is None:
        return
    tr = terminalreporter
    tr.section("hardening")
    if stats.corpus_cases:
        tr.write_line(
            f"bad-input corpus: {stats.corpus_cases} cases, {stats.corpus_clear_errors} clear errors,"
            f" {stats.corpus_with_warnings} read with warnings, {stats.corpus_clean} read cleanly,"
            f" {len(stats.corpus_crashes)} crashes"
        )
        for line in stats.corpus_crashes[:20]:
            tr.write_line(f"  crash: {line}")
    if stats.fuzz_examples:
        per = ", ".join(f"{n} {name}" for name, n in sorted(stats.fuzz_examples.items()))
        tr.write_line(
            f"fuzz: {sum(stats.fuzz_examples.values())} examples ({per}), {stats.fuzz_project_errors} project"
            f" errors, {len(stats.fuzz_unexpected)} unexpected exceptions, {stats.fuzz_seconds:.1f} s"
        )
        for line in stats.fuzz_unexpected[:20]:
            tr.write_line(f"  unexpected: {line}")

# only collected by --doctest-modules; it needs atheris and is run by test_fuzz_dicom.py as a script
collect_ignore = ["atheris_fuzz.py"]

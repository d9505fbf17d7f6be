"""Phantom cases with known truth, shared by the segment, quality and run tests (written once per session).

The helpers live in ``tests/pipeline/segment/anatomy_support.py``; that folder is
put on ``sys.path`` here so that tests of every stage can import them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from ichpipe.dicom_io import assemble_series, scan_study

sys.path.insert(0, str(Path(__file__).resolve().parent / "segment"))

from anatomy_support import PhantomCase, make_case

#: 128 x 128 (1.8 mm pixels), 32 x 5 mm, one 30 mL hematoma against the inner table (seed 3).
SMALL = {"seed": 3, "rows": 128, "columns": 128, "touch_skull": True, "volume_ml": 30.0}
#: 256 x 256 (0.9 mm pixels): fine enough for the threshold baseline's in-plane steps.
MEDIUM = {"seed": 1, "rows": 256, "columns": 256, "touch_skull": True, "volume_ml": 20.0}


@pytest.fixture(scope="session")
def small_case(tmp_path_factory: pytest.TempPathFactory) -> PhantomCase:
    return make_case(tmp_path_factory.mktemp("anatomy") / "small", **SMALL)


@pytest.fixture(scope="session")
def normal_case(tmp_path_factory: pytest.TempPathFactory) -> PhantomCase:
    """128 x 128 normal head (no hematoma)."""
    return make_case(tmp_path_factory.mktemp("anatomy") / "normal", seed=7, rows=128, columns=128, n_hematomas=0)


@pytest.fixture(scope="session")
def variant(tmp_path_factory: pytest.TempPathFactory) -> object:
    """``variant(**options)``: the small case written with generator options (flap, export, clip), cached."""
    cache: dict[str, PhantomCase] = {}

    def make(**options: object) -> PhantomCase:
        key = repr(sorted(options.items()))
        if key not in cache:
            cache[key] = make_case(tmp_path_factory.mktemp("anatomy") / f"v{len(cache)}", **SMALL, **options)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def medium_case(tmp_path_factory: pytest.TempPathFactory) -> PhantomCase:
    return make_case(tmp_path_factory.mktemp("anatomy") / "medium", **MEDIUM)


@pytest.fixture(scope="session")
def medium_normal(tmp_path_factory: pytest.TempPathFactory) -> PhantomCase:
    return make_case(tmp_path_factory.mktemp("anatomy") / "medium_normal", seed=7, rows=256, columns=256,
                     n_hematomas=0)


def small_head(make_series, paint=None, **series):
    """A 12-slice 64x64 'head': bone ring, brain at 40 HU, air outside; ``paint(img, yy, xx, r, i)`` adds blood
    on slice ``i`` (``r``: distance from the head's centre, pixels). ``series``: more options of ``make_series``
    (``offsets``, ``extra``, ``name``)."""
    yy, xx = np.mgrid[:64, :64]
    r = np.hypot(yy - 32, xx - 30)

    def hu(i: int) -> np.ndarray:
        img = np.full((64, 64), -1000.0)
        img[r < 26] = 1000.0
        img[r < 22] = 40.0
        if paint is not None:
            paint(img, yy, xx, r, i)
        return img

    with scan_study(make_series(size=64, hu=hu, **series)) as scan:
        return assemble_series(scan.require_selected().series)


@pytest.fixture
def make_head(make_series):
    """``make_head(paint, **series)``: :func:`small_head` written and assembled."""
    return lambda paint=None, **series: small_head(make_series, paint, **series)


@pytest.fixture
def head_volume(make_series):
    """A 12-slice 64x64 'head' (network inference tests): bone ring, brain at 40 HU, a 70 HU blob; air outside."""

    def blob(img, yy, xx, r, i):
        if 3 <= i <= 8:
            img[np.hypot(yy - 30, xx - 26) < 6] = 70.0

    return small_head(make_series, blob)

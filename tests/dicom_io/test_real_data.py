"""Real scanner data from ../shared/data (skipped when absent)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pydicom
import pytest

from ichpipe.dicom_io import assemble_series, scan_study
from ichpipe.dicom_io.assemble import _stored_to_hu
from ichpipe.dicom_io.series import slice_headers


def test_ge_head_tilt_and_uneven_spacing(shared_data: Path) -> None:
    with scan_study(shared_data / "ct-real" / "ge-hispeed-head-tilt") as scan:
        chosen = scan.require_selected()
        geo = chosen.geometry
        assert geo is not None
        assert geo.n_slices == 28
        assert geo.gantry_tilt_deg == pytest.approx(18.5, abs=0.05)
        gaps = Counter(round(float(g), 1) for g in np.diff(geo.offsets_mm))
        assert gaps == {4.0: 13, 1.1: 1, 7.0: 13}
        assert not geo.uniform_spacing
        assert geo.missing_slices == 0
        vol = assemble_series(chosen.series)
    # spacing along the normal, not the table step: 13x4.0 + 1.08 + 13x7.0 (+ end mirrors)
    assert geo.offsets_mm[-1] - geo.offsets_mm[0] == pytest.approx(13 * 4.0019 + 1.0811 + 13 * 6.9986, abs=0.01)
    table = np.linalg.norm(geo.positions[-1] - geo.positions[0])
    assert table / (geo.offsets_mm[-1] - geo.offsets_mm[0]) == pytest.approx(1 / np.cos(np.radians(18.5)), rel=1e-4)
    assert vol.hu.shape == (28, 512, 512)
    # PixelPaddingValue -1500 (intercept 0) becomes padding HU, never -1500
    assert vol.hu.min() >= -1024
    assert np.any(vol.hu == -1024)
    # sorted along the normal
    assert np.all(np.diff(vol.geometry.offsets_mm) > 0)


def test_ge_head_thicknesses_tile_the_slab_its_headers_describe(shared_data: Path) -> None:
    # Truth from the headers, not from the thickness rule: the first slice is a 4 mm slice and the
    # last a 7 mm slice (SliceThickness), so the scan covers from 2 mm below the first position to
    # 3.5 mm above the last, along the normal. No end slice is next to a gap (missing = 0).
    with scan_study(shared_data / "ct-real" / "ge-hispeed-head-tilt") as scan:
        chosen = scan.require_selected()
        geo = chosen.geometry
        assert geo is not None
        by_offset = sorted(chosen.series.slices, key=lambda s: float(np.dot(s.position, geo.normal)))
        first, last = (float(s.dataset.SliceThickness) for s in (by_offset[0], by_offset[-1]))
    assert (first, last) == (4.0, 7.0)
    th = geo.slice_thickness_mm
    assert th[0] == pytest.approx(first, abs=0.01) and th[-1] == pytest.approx(last, abs=0.01)
    slab = geo.offsets_mm[-1] - geo.offsets_mm[0] + first / 2 + last / 2
    assert th.sum() == pytest.approx(slab, abs=0.01)


def test_philips_selects_soft_tissue_series_and_says_why(shared_data: Path) -> None:
    with scan_study(shared_data / "ct-real" / "philips-ingenuity-head-phantom") as scan:
        chosen = scan.require_selected()
        assert chosen.attributes["SeriesNumber"] == 201
        assert chosen.attributes["ConvolutionKernel"] == "UB"
        assert chosen.geometry is not None and chosen.geometry.n_slices == 28
        assert chosen.geometry.slice_spacing_mm == pytest.approx(5.0)
        by_number = {s.attributes["SeriesNumber"]: s for s in scan.series}
        localizer = scan.selection.verdicts[by_number[100].series.key]
        failed = {v.rule for v in localizer if not v.passed}
        assert {"not_localizer", "enough_slices", "axial"} <= failed
        summary_parts = [s for s in scan.series if s.attributes["SeriesNumber"] == 401]
        assert summary_parts
        for part in summary_parts:
            failed = {v.rule for v in scan.selection.verdicts[part.series.key] if not v.passed}
            assert {"ct_image_storage", "original_primary"} <= failed
            reasons = scan.selection.reasons(part.series.key)
            assert reasons[-1].startswith("not selected: failed")


def test_philips_dicomdir_files_are_not_images(shared_data: Path) -> None:
    with scan_study(shared_data / "ct-real" / "philips-ingenuity-head-phantom") as scan:
        names = {sh.path.name for s in scan.series for sh in s.series.slices}
    assert "DIRFILE" not in names


def test_transfer_syntaxes_decode_to_identical_pixels(shared_data: Path) -> None:
    files = sorted((shared_data / "transfer-syntaxes").glob("*.dcm"))
    assert len(files) == 9
    syntaxes = set()
    ref = None
    for f in files:
        ds = pydicom.dcmread(f)
        syntaxes.add(str(ds.file_meta.TransferSyntaxUID))
        (sh,) = slice_headers(f, ds)
        hu = _stored_to_hu(ds, ds.pixel_array, sh, -1024.0)
        if ref is None:
            ref = hu
        np.testing.assert_array_equal(hu, ref, err_msg=f"{f.name} decodes differently")
    assert len(syntaxes) >= 6  # explicit/implicit/big endian, RLE, JPEG lossless, JPEG-LS, JPEG 2000


def test_transfer_syntax_folder_assembles_per_file(shared_data: Path) -> None:
    # the 9 files are one slice saved 9 times (same position): they must dedupe, not stack
    with scan_study(shared_data / "transfer-syntaxes") as scan:
        assert scan.series
        for s in scan.series:
            if s.geometry is not None:
                assert s.geometry.n_slices <= 9

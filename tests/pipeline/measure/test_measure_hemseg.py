"""``measure`` on a few HemSeg-500 expert masks (../shared/data; skipped when absent)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner

from ichpipe.pipeline.cli import cli

pytestmark = pytest.mark.shared_data


def test_planimetric_volume_is_voxel_count_times_header_voxel_volume(shared_data: Path) -> None:
    labels = shared_data / "hemseg500-masks" / "train" / "label"
    if not labels.is_dir():
        pytest.skip("hemseg500-masks is not present")
    paths = sorted(labels.glob("*.nii.gz"))[:3]
    assert len(paths) == 3
    for path in paths:
        img = nib.load(path)
        assert isinstance(img, nib.Nifti1Image)
        data = np.asanyarray(img.dataobj)
        # the header's own voxel volume: |det| of the affine's 3x3 part (pixdim product for these files)
        voxel_ml = abs(float(np.linalg.det(img.affine[:3, :3]))) / 1000.0
        n = int(np.count_nonzero(data))
        result = CliRunner().invoke(cli, ["measure", "--mask", str(path), "--json"])
        assert result.exit_code == 0, result.output
        h = json.loads(result.stdout)["hematoma"]
        assert h["n_voxels"] == n
        assert h["volume_ml"] == pytest.approx(n * voxel_ml, rel=1e-5, abs=1e-4)
        assert h["volume_ml"] == pytest.approx(n * float(np.prod(img.header.get_zooms()[:3])) / 1000.0, rel=1e-4)
        assert 0 < h["abc2_ml"]

"""``ichpipe train data --n-extra-axial``: studies with typed truth masks, and the lesion mix options."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner

from ichpipe.pipeline.cli import cli
from ichpipe.pipeline.datasets import load_case, read_manifest
from ichpipe.pipeline.synthetic.recipes import EXTRA_AXIAL_KINDS, GeneratorOptions, parse_shares
from ichpipe.pipeline.synthetic.training_data import generate_dataset


def _nifti(path: Path) -> np.ndarray:
    return np.asarray(nib.load(str(path)).dataobj).transpose(2, 1, 0) > 0


@pytest.fixture(scope="module")
def extra_axial_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("xa") / "data"
    options = GeneratorOptions(n=0, n_extra_axial=3, seed=7, size=128, shapes="builtin", val_fraction=0.0,
                               lesion_mix=("subdural=1", "epidural=1"), extra_axial_real_fraction=0.0)
    return generate_dataset(out, options)


def test_extra_axial_studies_carry_one_truth_mask_per_kind(extra_axial_data: Path) -> None:
    manifest = read_manifest(extra_axial_data)
    summary = json.loads((extra_axial_data.parent / "dataset.json").read_text(encoding="utf-8"))
    assert len(manifest.entries) == 3 and summary["lesion_types"][0] == "intraparenchymal"
    assert "extra-axial" in summary["description"]
    records = {c["case_id"]: c for c in summary["cases"]}
    seen: set[str] = set()
    for entry in manifest.entries:
        assert entry.source.startswith("extra-axial:") and entry.format == "nifti"
        case = load_case(entry)
        kinds = entry.source.split(":", 1)[1].split("+")
        assert set(kinds) <= {"subdural", "epidural", "intraparenchymal", "intraventricular"}
        union = np.zeros(case.mask.shape, dtype=bool)
        for kind in kinds:
            typed = _nifti(entry.image.parent / f"mask_{kind}.nii.gz")
            assert typed.any()
            union |= typed
            seen.add(kind)
        np.testing.assert_array_equal(union, case.mask)  # the typed masks add up to the training mask
        record = records[entry.case_id]
        assert set(record["volume_ml_by_kind"]) == set(kinds) and record["volume_ml"] > 0
        for lesion in record["lesions"]:
            if lesion["kind"] in ("subdural", "epidural"):
                assert lesion["max_thickness_mm"] > 0 and "midline_shift_mm" in lesion
        # blood is brighter than the brain it replaced
        assert float(np.median(case.image[case.mask])) > float(np.median(case.image[~case.mask & (case.image > 15)
                                                                                     & (case.image < 45)]))
    assert seen & {"subdural", "epidural"}


def test_lesion_mix_and_stage_options_are_checked(tmp_path: Path) -> None:
    assert parse_shares(("intraventricular=2",), EXTRA_AXIAL_KINDS, name="lesion_mix")["intraventricular"] == 1.0
    with pytest.raises(ValueError, match="lesion_mix"):
        GeneratorOptions(n=0, n_extra_axial=1, lesion_mix=("hygroma=1",))
    with pytest.raises(ValueError, match="subdural_stages"):
        GeneratorOptions(n=0, n_extra_axial=1, subdural_stages=("acute=0",))
    with pytest.raises(ValueError, match="extra_axial_real_fraction"):
        GeneratorOptions(n=0, n_extra_axial=1, extra_axial_real_fraction=2.0)
    res = CliRunner().invoke(cli, ["train", "data", "--out", str(tmp_path / "x"), "--n", "0", "--n-extra-axial", "1",
                                   "--lesion-mix", "subdural"])
    assert res.exit_code == 2 and "NAME=SHARE" in res.output


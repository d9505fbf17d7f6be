"""BLAST-CT v1 runner and segmenter: loader on random state dicts, tiling, ensemble, 1 mm resampling and the
way back to the DICOM grid, the segmenter on a phantom with random weights, the real weights (skipped without
../shared/data)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from deepmedic_support import random_deepmedic_state, tiny_deepmedic

from ichpipe.errors import CheckpointError
from ichpipe.models.deepmedic import DeepMedic, crop_center
from ichpipe.pipeline.segment.blast_ct import (
    hu_to_network_input,
    load_blast_ct_models,
    predict_probabilities,
    segment_blast_ct,
)
from ichpipe.pipeline.segment.iso_grid import NativeGrid, resample_to_isotropic, to_native_grid

# --- loading ----------------------------------------------------------------------------


def test_loader_reads_a_random_state_dict_of_the_real_names(tmp_path: Path) -> None:
    states = [random_deepmedic_state(1), random_deepmedic_state(2)]
    for i, state in enumerate(states, start=1):
        torch.save(state, tmp_path / f"model_{i}.pt")
    models = load_blast_ct_models(tmp_path, n_models=2)
    assert len(models) == 2 and not models[0].training
    for model, state in zip(models, states, strict=True):
        for key, value in model.state_dict().items():
            assert torch.equal(value, state[key]), key
    x = torch.randn(1, 1, 85, 85, 85)
    with torch.inference_mode():
        assert not torch.allclose(models[0](x), models[1](x))


def test_loader_errors_say_where_the_weights_go(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"model_1\.pt missing in .*--checkpoint DIR .*nothing is downloaded"):
        load_blast_ct_models(tmp_path / "absent", n_models=1)
    torch.save(random_deepmedic_state(1), tmp_path / "model_1.pt")
    with pytest.raises(CheckpointError, match=r"model_2\.pt, model_3\.pt missing"):
        load_blast_ct_models(tmp_path, n_models=3)
    with pytest.raises(ValueError, match="'n_models' must be an integer from 1 to 12"):
        load_blast_ct_models(tmp_path, n_models=13)
    bad = random_deepmedic_state(1)
    bad["extra.weight"] = torch.zeros(1)
    del bad["fully_connected.2.conv.weight"]
    torch.save(bad, tmp_path / "model_1.pt")
    with pytest.raises(CheckpointError, match=r"not a BLAST-CT v1 model: .*1 missing keys"):
        load_blast_ct_models(tmp_path, n_models=1)
    torch.save([torch.zeros(1)], tmp_path / "model_1.pt")
    with pytest.raises(CheckpointError, match="does not hold a state dict"):
        load_blast_ct_models(tmp_path, n_models=1)


# --- sliding window = one pass ---------------------------------------------------------------


def _volume(shape: tuple[int, int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.full(shape, -1.0, dtype=np.float32)  # air
    x[5:20, 8:40, 3:30] = rng.uniform(-1, 1, size=(15, 32, 27))
    return x


def _one_pass(net: DeepMedic, x: np.ndarray, extra: int = 0) -> np.ndarray:
    out = [15 * -(-s // 15) + extra for s in x.shape]
    padded = np.pad(x, [(40, 40 + o - s) for s, o in zip(x.shape, out, strict=True)], mode="edge")
    with torch.inference_mode():
        p = torch.softmax(net(torch.from_numpy(padded)[None, None]), dim=1)[0].numpy()
    return p[:, :x.shape[0], :x.shape[1], :x.shape[2]]


def test_tiles_give_exactly_the_single_pass() -> None:
    net = tiny_deepmedic(1)
    x = _volume((37, 130, 41), seed=4)
    tiled, info = predict_probabilities(x, [net], max_tile_voxels=15 * 30 * 15, precision="fp32", threads=1)
    assert info["tiles"] > 4 and info["computed_fraction"] < 1.0  # both tiling and the all-air shortcut ran
    whole = _one_pass(net, x)
    assert tiled.shape == (5, *x.shape)
    np.testing.assert_allclose(tiled, whole, atol=2e-6)
    # a longer edge padding changes nothing inside the volume (lattice anchored at voxel 0)
    np.testing.assert_allclose(_one_pass(net, x, extra=15), whole, atol=2e-6)


def test_ensemble_is_the_mean_of_the_members() -> None:
    nets = [tiny_deepmedic(1), tiny_deepmedic(2)]
    x = _volume((25, 45, 35), seed=5)
    both, _ = predict_probabilities(x, nets, precision="fp32")
    singles = [predict_probabilities(x, [n], precision="fp32")[0] for n in nets]
    np.testing.assert_allclose(both, (singles[0] + singles[1]) / 2, atol=1e-6)
    assert np.abs(singles[0] - singles[1]).max() > 1e-3


def test_predict_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="3-D volume"):
        predict_probabilities(np.zeros((4, 4), np.float32), [tiny_deepmedic()])
    with pytest.raises(ValueError, match="at least one network"):
        predict_probabilities(np.zeros((4, 4, 4), np.float32), [])
    with pytest.raises(ValueError, match="'precision' must be"):
        predict_probabilities(np.zeros((4, 4, 4), np.float32), [tiny_deepmedic()], precision="fp16")  # type: ignore[arg-type]


# --- geometry: resampling and the way back -----------------------------------------------------


def test_hu_window() -> None:
    np.testing.assert_allclose(hu_to_network_input([-1000.0, -15.0, 42.5, 100.0, 3000.0]), [-1, -1, 0, 1, 1])


def test_uneven_slices_resample_linearly_along_the_normal() -> None:
    z = np.array([0.0, 4.0, 8.0, 9.08, 16.08, 23.08])
    hu = np.broadcast_to((3.0 * z + 2.0)[:, None, None], (6, 4, 5)).astype(np.float32)
    iso = resample_to_isotropic(hu, NativeGrid(z_mm=z, pixel_spacing_mm=(0.5, 0.75), shape=hu.shape))
    assert iso.shape == (24, 2, 4)  # BLAST-CT: round(extent + 1), half to even: 24.08, 2.5, 4
    np.testing.assert_allclose(iso[:, 1, 1], 3.0 * np.arange(24) + 2.0, atol=1e-4)


def test_tilted_stack_is_desheared() -> None:
    # each slice starts 2 mm further along the column direction (rows axis), as with gantry tilt
    n, rows, cols, dr = 4, 20, 6, 0.5
    shift = np.stack([2.0 * np.arange(n), np.zeros(n)], axis=1)
    grid = NativeGrid(z_mm=np.arange(n) * 3.0, pixel_spacing_mm=(dr, 1.0), shape=(n, rows, cols), shift_mm=shift)
    w = shift[:, 0, None] + dr * np.arange(rows)[None, :]  # physical row coordinate of each pixel
    hu = np.broadcast_to(w[:, :, None], (n, rows, cols)).astype(np.float32) + 10.0
    iso = resample_to_isotropic(hu, grid, fill_hu=-1000.0)
    assert iso.shape == (10, 16, 6)  # rows span 0 .. 6 + 9.5 mm
    # the first slice covers w in [0, 9.5], the last [6, 15.5]; in between each plane is linear in w
    np.testing.assert_allclose(iso[0, :10, 2], 10.0 + np.arange(10), atol=1e-4)
    np.testing.assert_allclose(iso[9, 6:, 2], 10.0 + np.arange(6, 16), atol=1e-4)
    assert np.all(iso[0, 10:, 2] == -1000.0) and np.all(iso[9, :6, 2] == -1000.0)


def test_way_back_interpolates_exactly_at_native_voxel_centres() -> None:
    z = np.array([0.0, 4.0, 8.0, 9.08, 16.08])
    shift = np.stack([np.array([0.0, 1.3, 2.6, 3.0, 5.3]), np.array([0.0, 0.0, 0.4, 0.4, 0.4])], axis=1)
    grid = NativeGrid(z_mm=z, pixel_spacing_mm=(0.45, 0.7), shape=(5, 30, 17), shift_mm=shift)
    iso_shape = resample_to_isotropic(np.zeros(grid.shape, np.float32), grid).shape
    assert iso_shape == (17, 19, 13)  # round(16.08 + 1), round(5.3 + 29 * 0.45 + 1), round(0.4 + 16 * 0.7 + 1)
    zz, yy, xx = np.meshgrid(*(np.arange(s, dtype=np.float32) for s in iso_shape), indexing="ij")
    field = np.stack([zz, yy, xx, 0 * zz, 0 * zz])  # linear "probabilities": trilinear is exact on them
    _, native = to_native_grid(field, grid)
    assert native is not None
    k, r, c = np.meshgrid(np.arange(5), np.arange(30), np.arange(17), indexing="ij")
    # each native voxel centre in mm from the 1 mm grid's origin; beyond the grid's last point, its border
    for axis, where in enumerate((z[k], shift[k, 0] + 0.45 * r, shift[k, 1] + 0.7 * c)):
        np.testing.assert_allclose(native[axis], np.clip(where, 0, iso_shape[axis] - 1), atol=1e-4)
    assert np.any(z[k] > iso_shape[0] - 1)  # the last slice (16.08 mm) lies past the last plane (16 mm)


def test_nearest_way_back_and_bad_mode() -> None:
    grid = NativeGrid(z_mm=np.array([0.0, 2.0]), pixel_spacing_mm=(1.0, 1.0), shape=(2, 3, 3))
    prob = np.zeros((5, 3, 3, 3), np.float32)
    prob[0] = 1.0
    prob[4, 2, 1, 1] = 2.0  # the last 1 mm plane (z = 2 mm) holds an IVH voxel at row 1, col 1
    labels, native = to_native_grid(prob, grid, mode="nearest")
    assert native is None and labels[1, 1, 1] == 4 and labels.sum() == 4
    with pytest.raises(ValueError, match="'mode' must be"):
        to_native_grid(prob, grid, mode="cubic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="grid needs"):
        to_native_grid(prob[:, :2], grid)


def test_grid_validation() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        NativeGrid(z_mm=np.array([0.0, 0.0]), pixel_spacing_mm=(1.0, 1.0), shape=(2, 3, 3))
    with pytest.raises(ValueError, match="one position per slice"):
        NativeGrid(z_mm=np.array([0.0]), pixel_spacing_mm=(1.0, 1.0), shape=(2, 3, 3))
    with pytest.raises(ValueError, match="'shift_mm' must have shape"):
        NativeGrid(z_mm=np.array([0.0, 1.0]), pixel_spacing_mm=(1.0, 1.0), shape=(2, 3, 3), shift_mm=np.zeros((3, 2)))


def test_flipped_orientation_is_undone() -> None:
    net = tiny_deepmedic(2)
    z = np.arange(6) * 4.0
    rng = np.random.default_rng(0)
    hu = rng.uniform(-50, 120, size=(6, 14, 12)).astype(np.float32)
    flipped = NativeGrid(z_mm=z, pixel_spacing_mm=(1.0, 1.0), shape=hu.shape, flip=(True, False, True))
    plain = NativeGrid(z_mm=z, pixel_spacing_mm=(1.0, 1.0), shape=hu.shape)
    a = segment_blast_ct(hu, flipped, [net], precision="fp32", return_probabilities=True)
    b = segment_blast_ct(hu[::-1, :, ::-1].copy(), plain, [net], precision="fp32", return_probabilities=True)
    assert a.probabilities is not None and b.probabilities is not None
    np.testing.assert_allclose(a.probabilities, b.probabilities[:, ::-1, :, ::-1], atol=1e-5)


# --- the published weights on a real head (skipped without ../shared/data) ---------------------


@pytest.mark.shared_data
@pytest.mark.slow
def test_real_weights_on_a_real_head_with_and_without_a_blob(shared_data: Path) -> None:
    from ichpipe.dicom_io.assemble import assemble_series
    from ichpipe.dicom_io.study import scan_study
    from ichpipe.pipeline.segment.iso_grid import grid_from_geometry

    with scan_study(shared_data / "ct-real" / "ge-hispeed-head-tilt") as scan:
        volume = assemble_series(scan.require_selected().series)
    iso = resample_to_isotropic(volume.hu, grid_from_geometry(volume.geometry))
    net = load_blast_ct_models(shared_data / "blast-ct-v1", n_models=1)[0]
    # a 30 x 45 x 45 mm output block in the supratentorial brain: centre of the brain-density voxels
    brain = (iso > 20) & (iso < 45)
    zc = int(iso.shape[0] * 0.6)
    yc, xc = (int(v) for v in np.argwhere(brain[zc]).mean(axis=0))
    out = (30, 45, 45)
    start = [c - o // 2 - 40 for c, o in zip((zc, yc, xc), out, strict=True)]
    crop = iso[tuple(slice(s, s + o + 80) for s, o in zip(start, out, strict=True))].copy()
    inner = tuple(slice(40, 40 + o) for o in out)
    assert crop.shape == tuple(o + 80 for o in out)

    def classes(hu: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            logits = net(torch.from_numpy(hu_to_network_input(hu))[None, None])
        return logits.argmax(dim=1)[0].numpy()

    normal = classes(crop)
    brain_in = ((crop > 20) & (crop < 45))[inner]
    assert brain_in.sum() > 20_000
    assert (normal[brain_in] == 0).mean() > 0.99  # normal brain is background
    # a 75 HU sphere of radius 7 mm in the middle of that brain: a fresh haematoma
    zz, yy, xx = np.meshgrid(*(np.arange(s) for s in crop.shape), indexing="ij")
    centre = [s // 2 for s in crop.shape]
    blob = (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= 7**2
    with_blob = crop.copy()
    with_blob[blob] = 75.0 + np.random.default_rng(0).normal(0, 3, size=int(blob.sum()))
    found = classes(with_blob)
    blob_in = blob[inner]
    haemorrhage = np.isin(found[blob_in], (1, 2, 4))
    assert haemorrhage.mean() > 0.8
    assert (found[brain_in & ~blob_in] != 0).mean() < 0.05  # away from the blob the brain stays background



# --- the segmenter on DICOM phantoms --------------------------------------------------------


class _BloodAbove(DeepMedic):
    """Stands in for BLAST-CT: IPH where the input is 50-75 HU, IVH where it is 75-92 HU, else background.

    It has DeepMedic's geometry (margin 40, outputs multiples of 15), so the sliding window,
    the 1 mm resampling, the orientation flips and the way back run as with the real models,
    and the expected classes on the DICOM grid are known.
    """

    def __init__(self) -> None:
        super().__init__(feature_maps=(1,) * 8, fully_connected=(1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centre = crop_center(x, self.output_size(tuple(int(s) for s in x.shape[2:])))[:, 0]
        logits = torch.zeros((x.shape[0], 5, *centre.shape[1:]))
        n50, n75, n92 = (float(hu_to_network_input(h)) for h in (50.0, 75.0, 92.0))
        logits[:, 1] = 40.0 * torch.minimum(centre - n50, n75 - centre)
        logits[:, 4] = 40.0 * torch.minimum(centre - n75, n92 - centre)
        return logits


def _head(size: int, blob: bool) -> Callable[[int], np.ndarray]:
    """Slices of a round 'head' (bone ring, 35 HU brain) with a 65 HU blob and an 82 HU core on slices 3-8."""
    yy, xx = np.mgrid[:size, :size]
    c = size / 2
    r = np.hypot(yy - c, xx - c)

    def hu(i: int) -> np.ndarray:
        img = np.full((size, size), -1000.0)
        img[r < 0.45 * size] = 1000.0
        img[r < 0.38 * size] = 35.0
        if blob and 3 <= i <= 8:
            d = np.hypot(yy - c, xx - c - 0.1 * size)
            img[d < 0.14 * size] = 65.0
            img[d < 0.06 * size] = 82.0
        return img

    return hu


@pytest.fixture
def weights_dir(tmp_path: Path) -> Path:
    """A folder with model_1.pt: random numbers under BLAST-CT v1's key names and shapes."""
    folder = tmp_path / "blast"
    folder.mkdir()
    torch.save(random_deepmedic_state(7), folder / "model_1.pt")
    return folder


@pytest.mark.parametrize("tilt_deg", [0.0, 20.0])
def test_segmenter_maps_classes_back_to_the_dicom_grid_and_measures_each_type(
    make_series: Callable[..., Path], weights_dir: Path, tilt_deg: float
) -> None:
    from ichpipe.dicom_io import assemble_series, scan_study
    from ichpipe.pipeline.config import Config
    from ichpipe.pipeline.config.blast_ct_config import BlastCtConfig
    from ichpipe.pipeline.config.inference_config import InferenceConfig
    from ichpipe.pipeline.jobs.analyse_volume import analyse_volume
    from ichpipe.pipeline.measure.volume import measure_hematoma
    from ichpipe.pipeline.segment.blast_ct import BlastCtSegmenter

    hu = _head(64, blob=True)
    folder = make_series(size=64, hu=hu, tilt_deg=tilt_deg, offsets=tuple(range(0, 60, 5)))
    with scan_study(folder) as scan:
        volume = assemble_series(scan.require_selected().series)
    seg = BlastCtSegmenter(weights_dir, config=BlastCtConfig(models=1, precision="fp32"),
                           inference=InferenceConfig(device="cpu", min_component_ml=0.0))
    seg.models = [_BloodAbove().eval()]
    analysis = analyse_volume(volume, seg, Config())
    truth = (volume.hu > 50) & (volume.hu < 92)
    core = (volume.hu > 75) & (volume.hu < 92)
    dice = 2 * (analysis.mask & truth).sum() / (analysis.mask.sum() + truth.sum())
    assert dice > 0.9, dice
    truth_ml = measure_hematoma(truth, volume.geometry).volume_ml
    assert analysis.measurement.volume_ml == pytest.approx(truth_ml, rel=0.1)
    types = analysis.types
    assert types is not None and types["counted"] == ["iph", "eah", "ivh"]
    ivh_truth = measure_hematoma(core, volume.geometry).volume_ml
    assert types["volume_ml"]["ivh"] == pytest.approx(ivh_truth, rel=0.35)
    assert types["volume_ml"]["eah"] == 0.0
    assert sum(types["volume_ml"].values()) == pytest.approx(analysis.measurement.volume_ml, abs=1e-3)
    assert types["not_counted_ml"] == {"oedema": 0.0}


def test_run_with_random_weights_writes_report_types_and_quality(
    make_series: Callable[..., Path], weights_dir: Path, tmp_path: Path
) -> None:
    from ichpipe.pipeline.config import Config
    from ichpipe.pipeline.jobs.run_study import RunOptions, run_study

    folder = make_series(size=32, hu=_head(32, blob=True), offsets=tuple(range(0, 20, 2)))
    result = run_study(RunOptions(study=folder, out=tmp_path / "out", segmenter="blast_ct", checkpoint=weights_dir,
                                  blast_models=1, device="cpu"), Config())
    report = result.report
    assert report["segmenter"]["name"] == "blast_ct"
    assert len(report["segmenter"]["checkpoint_sha256"]) == 64
    assert report["segmenter_details"]["models"] == 1
    types = report["hematoma_types"]
    assert sum(types["volume_ml"].values()) == pytest.approx(report["hematoma"]["volume_ml"], abs=1e-3)
    assert "flags" in report["quality"] and report["quality"]["measurements"]["cross_check"]["segmenter"]
    assert (result.output_dir / "report.json").is_file()


def test_without_weights_the_error_says_where_to_put_them(make_series: Callable[..., Path], tmp_path: Path) -> None:
    from ichpipe.pipeline.config import Config
    from ichpipe.pipeline.jobs.run_study import RunOptions, build_segmenter

    config = Config()
    with pytest.raises(CheckpointError, match=r"needs the folder of its weights\. Put .*model_1\.pt .*--checkpoint"):
        build_segmenter(RunOptions(study=tmp_path, segmenter="blast_ct"), config)
    with pytest.raises(CheckpointError, match=r"is not a folder\. Put"):
        build_segmenter(RunOptions(study=tmp_path, segmenter="blast_ct", checkpoint=tmp_path / "nope"), config)
    with pytest.raises(CheckpointError, match=r"model_1\.pt, .*model_12\.pt missing in"):
        build_segmenter(RunOptions(study=tmp_path, segmenter="blast_ct", checkpoint=tmp_path), config)


def test_blast_models_out_of_range_is_a_usage_error(weights_dir: Path, tmp_path: Path) -> None:
    from ichpipe.errors import UsageError
    from ichpipe.pipeline.config import Config
    from ichpipe.pipeline.jobs.run_study import RunOptions, build_segmenter

    with pytest.raises(UsageError, match="--blast-models: Argument 'models' must be an integer from 1 to 12"):
        build_segmenter(RunOptions(study=tmp_path, segmenter="blast_ct", checkpoint=weights_dir, blast_models=13),
                        Config())
    with pytest.raises(CheckpointError, match=r"model_2\.pt missing"):
        build_segmenter(RunOptions(study=tmp_path, segmenter="blast_ct", checkpoint=weights_dir, blast_models=2),
                        Config())


def test_evaluate_data_scores_blast_ct_rows_on_hu_cases(
    weights_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``evaluate --data ... --segmenter blast_ct``: a row per model count, scored against the NIfTI mask
    (the stand-in model calls 50-92 HU blood, so the blob is the truth and the row's Dice is near 1)."""
    import json

    import nibabel as nib
    from click.testing import CliRunner

    import ichpipe.pipeline.segment.blast_ct as blast_module
    from ichpipe.pipeline.cli import cli

    monkeypatch.setattr(blast_module, "load_blast_ct_models",
                        lambda directory, n_models=12: [_BloodAbove().eval()] * n_models)
    hu = np.stack([_head(64, blob=True)(i) for i in range(12)]).astype(np.int16)  # (slices, rows, columns)
    truth = (hu > 50) & (hu < 92)
    affine = np.diag([3.0, 3.0, 5.0, 1.0])  # x, y, z in mm
    for name, data in (("ct", hu), ("mask", truth.astype(np.uint8))):
        nib.save(nib.Nifti1Image(data.transpose(2, 1, 0), affine), tmp_path / f"{name}.nii.gz")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("case_id,patient_id,split,format,image,mask,source\n"
                        "c1,P1,test,nifti,ct.nii.gz,mask.nii.gz,blob\n")
    result = CliRunner().invoke(cli, ["evaluate", "--data", str(manifest), "--segmenter", "blast_ct",
                                      "--blast-weights", str(weights_dir), "--blast-models", "1", "--json"])
    assert result.exit_code == 0, result.output
    summary = {row["model"]: row for row in json.loads(result.stdout)["summary"] if row["group"] == "all"}
    assert set(summary) == {"blast_ct x1", "ABC/2 on the true mask"}
    assert summary["blast_ct x1"]["n_cases"] == 1 and summary["blast_ct x1"]["dice"] > 0.9
    missing = CliRunner().invoke(cli, ["evaluate", "--data", str(manifest), "--segmenter", "blast_ct"])
    assert missing.exit_code != 0 and "--blast-weights DIR" in missing.output

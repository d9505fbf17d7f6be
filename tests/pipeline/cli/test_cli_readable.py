"""A readable command line: inspect's short lines, flags after the subcommand, run's closing summary."""

from __future__ import annotations

import logging
from pathlib import Path

from click.testing import CliRunner

from ichpipe.pipeline.cli import cli
from ichpipe.pipeline.synthetic.phantom import PhantomSpec, write_phantom_study


def test_inspect_shows_description_number_short_uid_and_rules_only_on_explain(tmp_path: Path) -> None:
    write_phantom_study(tmp_path / "s", PhantomSpec(seed=1, rows=64, columns=64, n_slices=12))
    plain = CliRunner().invoke(cli, ["inspect", "--study", str(tmp_path / "s")])
    assert plain.exit_code == 0, plain.output
    line = next(x for x in plain.stdout.splitlines() if x.startswith("* "))
    assert line.startswith('* #2 CT "HEAD STD 5MM" (...') and len(line) < 120
    assert "PASS " not in plain.stdout and "(?i)" not in plain.stdout
    explained = CliRunner().invoke(cli, ["inspect", "--study", str(tmp_path / "s"), "--explain"])
    assert "PASS modality_ct" in explained.stdout


def test_verbose_and_debug_accepted_after_the_subcommand(tmp_path: Path) -> None:
    write_phantom_study(tmp_path / "s", PhantomSpec(seed=1, rows=64, columns=64, n_slices=12))
    result = CliRunner().invoke(cli, ["inspect", "--study", str(tmp_path / "s"), "-v", "--debug"])
    assert result.exit_code == 0, result.output
    assert logging.getLogger().level == logging.DEBUG
    assert logging.getLogger("pynetdicom").level == logging.DEBUG
    CliRunner().invoke(cli, ["inspect", "--study", str(tmp_path / "s"), "-v"])
    assert logging.getLogger().level == logging.INFO
    assert logging.getLogger("pynetdicom").level == logging.WARNING  # no DIMSE dumps without --debug


def test_run_ends_with_what_it_wrote(tmp_path: Path) -> None:
    write_phantom_study(tmp_path / "s", PhantomSpec(seed=2, rows=64, columns=64, n_slices=12, volume_ml=5.0))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"store:\n  path: {tmp_path / 'store.sqlite'}\n")
    result = CliRunner().invoke(cli, ["run", "--study", str(tmp_path / "s"), "--out", str(tmp_path / "out"),
                                      "--segmenter", "threshold", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Hematoma volume ") and lines[2].startswith("Wrote to ")
    assert lines[1].startswith("  beside it sa_cbam_unet_slim read ")  # quality.cross_check: auto
    names = [line.split()[0] for line in lines[3:]]
    assert names == ["seg.dcm", "key_image.png", "key_image_sc.dcm", "report.json", "sr.dcm"]
    assert "OHIF" in result.stdout


def test_run_says_how_much_of_the_volume_the_end_slice_network_added(tmp_path: Path) -> None:
    from ichpipe.pipeline.cli.run_cmd import _summary

    report = {"hematoma": {"volume_ml": 1.88, "abc2_ml": 1.16, "n_voxels": 1771},
              "segmenter": {"name": "sa_cbam_unet_slim"}, "outputs": {},
              "quality": {"flags": [], "measurements": {
                  "end_extension": {"slices_run": 5, "slices_extended": 3, "added_ml": 0.7213}}}}
    lines = _summary(report, tmp_path)
    assert lines[1] == ("  of it 0.72 mL on 3 slice(s) just beyond the bleeds' ends, added by the end-slice"
                        " network (inference.end_extension)")
    report["quality"]["measurements"]["end_extension"]["added_ml"] = 0.0  # type: ignore[index]
    assert _summary(report, tmp_path)[1].startswith("Wrote to ")


def test_run_says_how_much_of_the_volume_the_extra_axial_network_added(tmp_path: Path) -> None:
    from ichpipe.pipeline.cli.run_cmd import _summary

    report = {"hematoma": {"volume_ml": 31.2, "abc2_ml": 30.0, "n_voxels": 90000},
              "segmenter": {"name": "sa_cbam_unet_slim"}, "outputs": {},
              "quality": {"flags": [], "measurements": {
                  "extra_axial": {"components_added": 1, "components_refused": 2, "added_ml": 12.345}}}}
    lines = _summary(report, tmp_path)
    assert lines[1] == ("  of it 12.35 mL in 1 collection(s) against the inner table, added by the extra-axial"
                        " network (inference.extra_axial)")
    report["quality"]["measurements"]["extra_axial"]["added_ml"] = 0.0  # type: ignore[index]
    assert _summary(report, tmp_path)[1].startswith("Wrote to ")


def test_run_says_what_it_did_not_count_as_denser_than_blood(tmp_path: Path) -> None:
    from ichpipe.pipeline.cli.run_cmd import _summary

    report = {"hematoma": {"volume_ml": 1.61, "abc2_ml": 1.12, "n_voxels": 1514},
              "segmenter": {"name": "sa_cbam_unet_slim"}, "outputs": {},
              "quality": {"flags": [], "measurements": {
                  "denser_than_blood": {"components_removed": 1, "removed_ml": 0.0574, "median_hu_above": 120.0}}}}
    lines = _summary(report, tmp_path)
    assert lines[1] == ("  not counted: 0.06 mL in 1 component(s) the network called, denser than blood"
                        " (median > 120 HU: calcification or bone)")


def test_run_says_what_it_did_not_count_as_calcification(tmp_path: Path) -> None:
    from ichpipe.pipeline.cli.run_cmd import _summary

    report = {"hematoma": {"volume_ml": 7.9, "abc2_ml": 7.1, "n_voxels": 8000},
              "segmenter": {"name": "sa_cbam_unet_slim"}, "outputs": {},
              "quality": {"flags": [], "measurements": {
                  "calcified": {"components_removed": 1, "removed_ml": 0.7392, "parts_removed_ml": 0.4121,
                                "largest_share": 0.8, "min_share": 0.5}}}}
    lines = _summary(report, tmp_path)
    assert lines[1] == ("  not counted: 0.74 mL in 1 component(s) and 0.41 mL beside blood, calcification (foci"
                        " denser than acute blood; inference.calcified)")
    report["quality"]["measurements"]["calcified"].update(removed_ml=0.0, parts_removed_ml=0.0)  # type: ignore[index]
    assert _summary(report, tmp_path)[1].startswith("Wrote to ")


def test_run_says_what_it_did_not_count_as_pieces_on_bones_edge(tmp_path: Path) -> None:
    from ichpipe.pipeline.cli.run_cmd import _summary

    report = {"hematoma": {"volume_ml": 3.38, "abc2_ml": 3.1, "n_voxels": 3300},
              "segmenter": {"name": "sa_cbam_unet_slim"}, "outputs": {},
              "quality": {"flags": [], "measurements": {
                  "bone_edge_pieces": {"components_removed": 5, "removed_ml": 0.9876}}}}
    lines = _summary(report, tmp_path)
    assert lines[1] == ("  not counted: 0.99 mL in 5 single-slice piece(s) on bone's edge (the skull base's partial"
                        " volume; inference.bone_edge_max_ml)")


def test_run_says_what_the_segmenter_beside_it_read(tmp_path: Path) -> None:
    from ichpipe.pipeline.cli.run_cmd import _summary

    report = {"hematoma": {"volume_ml": 37.48, "abc2_ml": 27.6, "n_voxels": 18000},
              "segmenter": {"name": "threshold", "baseline": True}, "outputs": {},
              "quality": {"flags": [{"code": "segmenter_disagreement"}], "measurements": {
                  "cross_check": {"segmenter": "sa_cbam_unet_slim", "kind": "trained network", "volume_ml": 12.2549}}}}
    lines = _summary(report, tmp_path)
    assert lines[0].startswith("Hematoma volume 37.48 mL") and "threshold baseline; 1 quality flag(s)" in lines[0]
    assert lines[1] == ("  beside it sa_cbam_unet_slim read 12.25 mL on the same intracranial space"
                        " (quality.cross_check; segmenter_disagreement when they differ)")
    del report["quality"]["measurements"]["cross_check"]  # type: ignore[attr-defined]
    assert _summary(report, tmp_path)[1].startswith("Wrote to ")


def test_run_says_how_much_of_the_volume_the_faint_growth_added(tmp_path: Path) -> None:
    from ichpipe.pipeline.cli.run_cmd import _summary

    report = {"hematoma": {"volume_ml": 7.4, "abc2_ml": 8.0, "n_voxels": 7000},
              "segmenter": {"name": "sa_cbam_unet_slim"}, "outputs": {},
              "quality": {"flags": [], "measurements": {
                  "faint_growth": {"components_grown": 2, "added_ml": 2.0025}}}}
    lines = _summary(report, tmp_path)
    assert lines[1] == ("  of it 2.00 mL grown from 2 faint component(s) (median under"
                        " inference.faint_max_median_hu) into the network's looser call")
    report["quality"]["measurements"]["faint_growth"]["added_ml"] = 0.0  # type: ignore[index]
    assert _summary(report, tmp_path)[1].startswith("Wrote to ")


def test_run_says_how_much_of_the_volume_is_the_partial_volume_rim(tmp_path: Path) -> None:
    from ichpipe.pipeline.cli.run_cmd import _summary

    report = {"hematoma": {"volume_ml": 21.6, "abc2_ml": 24.0, "n_voxels": 20000},
              "segmenter": {"name": "sa_cbam_unet_slim"}, "outputs": {},
              "quality": {"flags": [], "measurements": {
                  "edge_rim": {"rim_mm": 1.0, "min_hu": 42.0, "steps": 2, "added_ml": 1.804}}}}
    lines = _summary(report, tmp_path)
    assert lines[1] == ("  of it 1.80 mL in the bleeds' blurred rim (in plane, up to 1 mm out, 42 HU and over;"
                        " inference.rim_mm)")
    report["quality"]["measurements"]["edge_rim"]["added_ml"] = 0.0  # type: ignore[index]
    assert _summary(report, tmp_path)[1].startswith("Wrote to ")


def test_run_says_how_much_of_the_volume_the_enclosed_parts_added(tmp_path: Path) -> None:
    from ichpipe.pipeline.cli.run_cmd import _summary

    report = {"hematoma": {"volume_ml": 9.3, "abc2_ml": 10.1, "n_voxels": 9000},
              "segmenter": {"name": "sa_cbam_unet_slim"}, "outputs": {},
              "quality": {"flags": [], "measurements": {"enclosed_fill": {"pieces": 3, "added_ml": 0.872}}}}
    lines = _summary(report, tmp_path)
    assert lines[1] == ("  of it 0.87 mL in 3 hypodense part(s) that the blood encloses (a swirl, a black hole;"
                        " inference.enclosed_close_mm)")
    report["quality"]["measurements"]["enclosed_fill"]["added_ml"] = 0.0  # type: ignore[index]
    assert _summary(report, tmp_path)[1].startswith("Wrote to ")


def test_run_says_when_a_large_field_was_read_on_a_larger_grid(tmp_path: Path) -> None:
    from ichpipe.pipeline.cli.run_cmd import _summary

    report = {"hematoma": {"volume_ml": 43.05, "abc2_ml": 42.51, "n_voxels": 9540},
              "segmenter": {"name": "sa_cbam_unet_slim"}, "outputs": {},
              "quality": {"flags": [], "measurements": {"network_input": {"grid": [443, 443, 1.1]}}}}
    lines = _summary(report, tmp_path)
    assert lines[1] == ("  a large field of view: the networks read each slice on a 443 x 443 grid (a network pixel"
                        " 1.1 mm wide, near what they learnt; inference.max_network_pixel_mm)")
    del report["quality"]["measurements"]["network_input"]  # type: ignore[attr-defined]
    assert _summary(report, tmp_path)[1].startswith("Wrote to ")


def test_run_says_when_thin_slices_were_read_as_slabs(tmp_path: Path) -> None:
    from ichpipe.pipeline.cli.run_cmd import _summary

    report = {"hematoma": {"volume_ml": 46.5, "abc2_ml": 49.6, "n_voxels": 435722},
              "segmenter": {"name": "sa_cbam_unet_slim"}, "outputs": {},
              "quality": {"flags": [], "measurements": {
                  "network_input": {"thin_slab": {"slab_mm": 5.0, "max_slices_averaged": 7}}}}}
    lines = _summary(report, tmp_path)
    assert lines[1] == ("  thin slices: the networks read each as a 5 mm slab (up to 7 slices averaged;"
                        " inference.thin_slab_mm); the mask is on the thin slices")
    report["quality"]["measurements"]["network_input"] = {"stripped_skull_restored_mm": 10.0}  # type: ignore[index]
    assert _summary(report, tmp_path)[1].startswith("Wrote to ")


def test_run_says_when_the_networks_read_a_turned_head_upright(tmp_path: Path) -> None:
    from ichpipe.pipeline.cli.run_cmd import _summary

    turn = {"degrees": -23.6, "elongation": 1.221, "cut": False, "read_upright": True}
    report = {"hematoma": {"volume_ml": 0.89, "abc2_ml": 0.7, "n_voxels": 900},
              "segmenter": {"name": "sa_cbam_unet_slim"}, "outputs": {},
              "quality": {"flags": [], "measurements": {"head_turn": turn}}}
    lines = _summary(report, tmp_path)
    assert lines[1] == ("  the head lay turned 24 degrees in the image: the networks read it turned upright, their call"
                        " turned back (inference.upright_min_degrees)")
    turn["read_upright"] = False  # under the bar, round or cut: nothing to say
    assert _summary(report, tmp_path)[1].startswith("Wrote to ")

"""PACS round 2 (issue 18), against a real Orthanc: pulled studies are processed in the same run,
re-processing replaces ichpipe's earlier SEG/SC in the PACS, and a C-MOVE nobody can answer gets a hint."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from batch_support import dicom_files, tiny_spec, write_config
from pydicom.dataset import Dataset
from pydicom.uid import SecondaryCaptureImageStorage, SegmentationStorage
from test_pacs import Orthanc, _batch
from test_pacs import orthanc as orthanc_server  # noqa: F401 (a fixture, used by name below)

from ichpipe.errors import PacsError
from ichpipe.pipeline.batch.pacs.retrieve import _MOVE, _association, _check_retrieve
from ichpipe.pipeline.config.pacs_config import PacsConfig
from ichpipe.pipeline.synthetic.phantom import write_phantom_study


def _upload(orthanc: Orthanc, tmp_path: Path, seed: int) -> tuple[str, str]:
    study = tmp_path / f"phantom-{seed}"
    write_phantom_study(study, tiny_spec(seed))
    orthanc.upload(dicom_files(study))
    truth = json.loads((study / "truth.json").read_text())
    return truth["study_instance_uid"], truth["selected_series_instance_uid"]


@pytest.mark.slow
def test_pulled_studies_are_processed_in_the_same_run_whatever_the_settle_time(
        request: pytest.FixtureRequest, tmp_path: Path) -> None:
    orthanc: Orthanc = request.getfixturevalue("orthanc_server")
    study_uid, ct_uid = _upload(orthanc, tmp_path, 610)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = write_config(tmp_path / "cfg.json", store=tmp_path / "store.sqlite", batch={"settle_s": 3600},
                          pacs=orthanc.pacs_config(pull=True))
    code, run, stderr = _batch(inbox, tmp_path / "out", config)
    assert code == 0, stderr
    assert run["pulled"] >= 1
    mine = [i for i in run["items"] if i["study_instance_uid"] == study_uid]
    assert [(i["status"], i["series_instance_uid"]) for i in mine] == [("processed", ct_uid)], run["items"]


@pytest.mark.slow
def test_reprocessing_replaces_the_earlier_seg_and_key_image_in_the_pacs(
        request: pytest.FixtureRequest, tmp_path: Path) -> None:
    orthanc: Orthanc = request.getfixturevalue("orthanc_server")
    study_uid, ct_uid = _upload(orthanc, tmp_path, 611)
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    rest = f"http://127.0.0.1:{orthanc.http_port}"
    pacs = orthanc.pacs_config(pull=True, send=True, replace_previous="orthanc", rest_url=rest)
    first = write_config(tmp_path / "cfg1.json", store=tmp_path / "store.sqlite", pacs=pacs)
    assert _batch(inbox, out, first)[0] == 0
    before = orthanc.instances_by_sop_class(study_uid)
    (seg1,) = before[SegmentationStorage]
    # Processed again (a new ledger: as after a changed config or checkpoint): new SEG and key image, sent again.
    second = write_config(tmp_path / "cfg2.json", store=tmp_path / "store2.sqlite", pacs=pacs)
    code, run, stderr = _batch(inbox, out, second)
    mine = [i for i in run["items"] if i["series_instance_uid"] == ct_uid]
    assert code == 0 and [i["status"] for i in mine] == ["processed"], stderr
    after = orthanc.instances_by_sop_class(study_uid)
    (seg2,) = after[SegmentationStorage]  # one SEG, not two
    assert len(after[SecondaryCaptureImageStorage]) == 1
    assert seg2["SeriesInstanceUID"] != seg1["SeriesInstanceUID"]
    assert seg2["ReferencedSeriesSequence"][0]["SeriesInstanceUID"] == ct_uid


@pytest.mark.slow
def test_a_c_move_refused_without_sub_operations_names_the_unknown_destination(request: pytest.FixtureRequest,
                                                                              tmp_path: Path) -> None:
    orthanc: Orthanc = request.getfixturevalue("orthanc_server")
    study_uid, ct_uid = _upload(orthanc, tmp_path, 612)
    config = PacsConfig(**orthanc.pacs_config(pull=True))
    query = Dataset()
    query.QueryRetrieveLevel, query.StudyInstanceUID, query.SeriesInstanceUID = "SERIES", study_uid, ct_uid
    with _association(config, model=_MOVE) as assoc:
        # Orthanc's real answer to a destination it does not know (0xC000, no sub-operation at all)
        responses = list(assoc.send_c_move(query, "NOTKNOWN", _MOVE))
    assert int(responses[-1][0].Status) not in (0x0000, 0xB000)
    with pytest.raises(PacsError, match="does not know the move destination NOTKNOWN"):
        _check_retrieve(iter(responses), "C-MOVE", ct_uid, replace(config, ae_title="NOTKNOWN"))

"""PACS delivery and retrieval against a real Orthanc started on loopback ports by the test.

Orthanc (Debian package ``orthanc``) gets its own storage folder, DICOM and
HTTP ports and a modality entry for ichpipe (C-MOVE destination, and the
only AE allowed to talk to it). The tests push a phantom study in through
the REST API, let ``ichpipe batch --pull --send`` fetch it, process it with
the threshold segmenter and send the SEG and key image back, and check
through the REST API that they arrived under the right study.

The Orthanc tests skip only where no ``Orthanc`` binary is found.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest
from batch_support import dicom_files, tiny_spec, valid_study, write_config
from click.testing import CliRunner
from pydicom.uid import SecondaryCaptureImageStorage, SegmentationStorage

from ichpipe.errors import PacsError
from ichpipe.pipeline.batch.ledger import list_ledger
from ichpipe.pipeline.batch.pacs.retrieve import pull_new_studies
from ichpipe.pipeline.batch.pacs.store_scu import send_files
from ichpipe.pipeline.cli import cli
from ichpipe.pipeline.config import load_config
from ichpipe.pipeline.config.pacs_config import PacsConfig
from ichpipe.pipeline.serial.store import open_store
from ichpipe.pipeline.synthetic.phantom import write_phantom_study

ICHPIPE_AET = "ICHPIPE"
ORTHANC_AET = "ORTHANC"


def _orthanc_binary() -> str | None:
    found = shutil.which("Orthanc")
    if found:
        return found
    for candidate in ("/usr/sbin/Orthanc", "/usr/bin/Orthanc", "/usr/local/bin/Orthanc"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Orthanc:
    """A running Orthanc and how to reach it."""

    dicom_port: int
    http_port: int
    move_port: int
    log: Path

    def _request(self, method: str, path: str, data: bytes | None = None) -> Any:
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=data, method=method)
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")

    def get(self, path: str) -> Any:
        return self._request("GET", path)

    def post(self, path: str, data: bytes) -> Any:
        return self._request("POST", path, data)

    def upload(self, files: list[Path]) -> None:
        for f in files:
            self.post("/instances", f.read_bytes())

    def study_id(self, study_uid: str) -> str:
        (hit,) = [h for h in self.post("/tools/lookup", study_uid.encode()) if h["Type"] == "Study"]
        return str(hit["ID"])

    def instances_by_sop_class(self, study_uid: str) -> dict[str, list[dict[str, Any]]]:
        """Every instance of the study as simplified tags, grouped by SOP Class UID."""
        out: dict[str, list[dict[str, Any]]] = {}
        for series in self.get(f"/studies/{self.study_id(study_uid)}/series"):
            for iid in series["Instances"]:
                tags = self.get(f"/instances/{iid}/simplified-tags")
                out.setdefault(tags["SOPClassUID"], []).append(tags)
        return out

    def pacs_config(self, **kw: Any) -> dict[str, Any]:
        values: dict[str, Any] = {"ae_title": ICHPIPE_AET, "remote_host": "127.0.0.1",
                                  "remote_port": self.dicom_port, "remote_ae_title": ORTHANC_AET,
                                  "timeout_s": 20, "move_port": self.move_port, "move_bind_address": "127.0.0.1",
                                  "pull_days": 0}
        values.update(kw)
        return values


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    binary = _orthanc_binary()
    if binary is None:
        pytest.skip("the Orthanc binary was not found (Debian: apt-get install -y orthanc)")
    root = tmp_path_factory.mktemp("orthanc")
    server = Orthanc(dicom_port=_free_port(), http_port=_free_port(), move_port=_free_port(), log=root / "log.txt")
    config = {
        "Name": "ichpipe-test",
        "StorageDirectory": str(root / "storage"),
        "IndexDirectory": str(root / "storage"),
        "DicomAet": ORTHANC_AET,
        "DicomPort": server.dicom_port,
        "HttpPort": server.http_port,
        # Orthanc 1.10 has no bind-address setting: it listens on every interface. Only
        # loopback HTTP clients and the ichpipe AE from 127.0.0.1 are let in.
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomAlwaysAllowEcho": False,
        "DicomAlwaysAllowStore": False,
        "DicomCheckModalityHost": True,
        "DicomModalities": {"ichpipe": {"AET": ICHPIPE_AET, "Host": "127.0.0.1", "Port": server.move_port}},
        "Plugins": [],
        "SaveJobs": False,
    }
    (root / "orthanc.json").write_text(json.dumps(config, indent=2))
    with open(server.log, "wb") as log:
        proc = subprocess.Popen([binary, str(root / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                server.get("/system")
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Orthanc did not start:\n{server.log.read_text()[-3000:]}") from None
                time.sleep(0.3)
        yield server
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


def _batch(inbox: Path, out: Path, config: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    result = CliRunner().invoke(cli, ["batch", "--inbox", str(inbox), "--out", str(out), "--segmenter",
                                      "threshold", "--config", str(config), "--json", *extra])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.stdout), result.stderr


@pytest.mark.parametrize("retrieve", ["move", "get"])
def test_pull_process_and_send_back(orthanc: Orthanc, tmp_path: Path, retrieve: str) -> None:
    study = tmp_path / "phantom"
    write_phantom_study(study, tiny_spec(500 if retrieve == "move" else 501, distractors=("localizer",)))
    truth = json.loads((study / "truth.json").read_text())
    study_uid, ct_uid = truth["study_instance_uid"], truth["selected_series_instance_uid"]
    orthanc.upload(dicom_files(study))
    n_ct = len([f for f in dicom_files(study) if pydicom.dcmread(f, stop_before_pixels=True).Modality == "CT"])

    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    config = write_config(tmp_path / "cfg.json", store=tmp_path / "store.sqlite",
                          pacs=orthanc.pacs_config(pull=True, send=True, retrieve=retrieve))
    code, run, stderr = _batch(inbox, out, config)
    assert code == 0, stderr
    assert run["pulled"] >= 1 and run["pull_error"] is None
    # Only CT series were pulled (the localizer is CT too; SEG and key images never come back).
    pulled = inbox / study_uid
    assert pulled.is_dir() and len(list(pulled.iterdir())) == n_ct
    assert {pydicom.dcmread(f, stop_before_pixels=True).Modality for f in pulled.iterdir()} == {"CT"}
    mine = [i for i in run["items"] if i["study_instance_uid"] == study_uid]
    assert [(i["status"], i["series_instance_uid"]) for i in mine] == [("processed", ct_uid)]

    by_class = orthanc.instances_by_sop_class(study_uid)
    (seg,) = by_class[SegmentationStorage]
    (sc,) = by_class[SecondaryCaptureImageStorage]
    for tags in (seg, sc):
        assert tags["StudyInstanceUID"] == study_uid
    assert seg["ReferencedSeriesSequence"][0]["SeriesInstanceUID"] == ct_uid
    report = json.loads((out / study_uid / ct_uid / "report.json").read_text())
    assert seg["SOPInstanceUID"] == pydicom.dcmread(report["outputs"]["seg"]).SOPInstanceUID
    with open_store(load_config(config).store) as store:
        row = {r.series_instance_uid: r for r in list_ledger(store)}[ct_uid]
    assert row.delivered_at is not None and row.delivery_error is None

    # Next run: nothing new to pull, nothing to process, nothing sent twice.
    code, again, stderr = _batch(inbox, out, config)
    assert code == 0 and again["pulled"] == 0, stderr
    assert again["counts"]["processed"] == again["counts"]["delivered"] == 0
    assert {k: len(v) for k, v in orthanc.instances_by_sop_class(study_uid).items()} == \
           {k: len(v) for k, v in by_class.items()}


def test_failed_delivery_is_retried_without_reprocessing(orthanc: Orthanc, tmp_path: Path) -> None:
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    study = valid_study(inbox / "a", 510)
    study_uid = json.loads((study / "truth.json").read_text())["study_instance_uid"]
    dead = write_config(tmp_path / "dead.json", store=tmp_path / "store.sqlite",
                        pacs=orthanc.pacs_config(send=True, remote_port=_free_port(), timeout_s=3))
    code, run, _ = _batch(inbox, out, dead)
    assert code == 1
    (item,) = run["items"]
    assert item["status"] == "failed" and "sending to the PACS failed" in item["error"]
    assert (out / study_uid).is_dir()  # processed all the same
    live = write_config(tmp_path / "live.json", store=tmp_path / "store.sqlite",
                        pacs=orthanc.pacs_config(send=True))
    code, run, stderr = _batch(inbox, out, live)
    assert code == 0, stderr
    assert [i["status"] for i in run["items"]] == ["delivered"]
    by_class = orthanc.instances_by_sop_class(study_uid)
    assert len(by_class[SegmentationStorage]) == 1 and len(by_class[SecondaryCaptureImageStorage]) == 1
    code, run, _ = _batch(inbox, out, live)
    assert code == 0 and [i["status"] for i in run["items"]] == ["skipped"]


def test_send_files_directly(orthanc: Orthanc, tmp_path: Path) -> None:
    study = valid_study(tmp_path / "s", 520)
    files = dicom_files(study)[:2]
    results = send_files(files, config=PacsConfig(**orthanc.pacs_config()))
    assert [r.status for r in results] == [0, 0]
    uid = json.loads((study / "truth.json").read_text())["study_instance_uid"]
    assert orthanc.get(f"/studies/{orthanc.study_id(uid)}")["ID"]


def test_an_unreachable_pacs_is_a_clear_error(tmp_path: Path) -> None:
    """No Orthanc needed: nothing listens on the port."""
    config = PacsConfig(remote_host="127.0.0.1", remote_port=_free_port(), timeout_s=3, pull_days=0)
    study = valid_study(tmp_path / "s", 530)
    with pytest.raises(PacsError, match=r"PACS@127\.0\.0\.1"):
        send_files(dicom_files(study)[:1], config=config)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    with pytest.raises(PacsError, match=r"refused or did not answer|Cannot connect"):
        pull_new_studies(inbox, config=config)


def test_a_failed_pull_still_processes_the_inbox_and_exits_1(tmp_path: Path) -> None:
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    valid_study(inbox / "a", 540)
    config = write_config(tmp_path / "cfg.json", store=tmp_path / "store.sqlite",
                          pacs={"remote_port": _free_port(), "timeout_s": 3, "pull": True})
    code, run, stderr = _batch(inbox, out, config)
    assert code == 1 and run["pull_error"] and run["counts"]["processed"] == 1
    assert "pulling new studies from the PACS failed" in stderr

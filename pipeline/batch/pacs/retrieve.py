"""Pull new studies from a PACS into the inbox: C-FIND, then C-MOVE or C-GET per series.

1. C-FIND at STUDY level (Study Root) for studies of the last ``pull_days``
   days whose ModalitiesInStudy holds ``pull_modality``;
2. for each study not yet in the inbox (``INBOX/<StudyInstanceUID>/``) nor
   in the ledger, C-FIND at SERIES level for its ``pull_modality`` series
   (so ichpipe's own SEG and key images are never pulled back);
3. C-MOVE each series to ichpipe's temporary storage SCP (``pacs.ae_title``
   on ``move_bind_address:move_port``, which the PACS must know), or C-GET it
   on the same association;
4. files land in ``INBOX/.incoming-<StudyInstanceUID>/`` (hidden: the batch
   ignores it) named ``<SOPInstanceUID>.dcm`` and written atomically; when
   every series arrived the folder is renamed to ``INBOX/<StudyInstanceUID>/``
   in one step, so a batch never sees half a study.

Folder and file names come from UIDs only, validated.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from ichpipe.errors import DicomInputError, PacsError
from ichpipe.extras import import_extra
from ichpipe.pipeline.batch.pacs.store_scu import make_ae
from ichpipe.pipeline.config.pacs_config import PacsConfig
from ichpipe.pipeline.outputs.paths import validate_uid

__all__ = ["PacsStudy", "find_pacs_series", "find_pacs_studies", "pull_new_studies"]

log = logging.getLogger(__name__)

#: Storage SOP classes offered for C-GET (the series pulled are CT images).
_GET_STORAGE_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image Storage
    "1.2.840.10008.5.1.4.1.1.2.2",  # Legacy Converted Enhanced CT Image Storage
)
_PENDING = {0xFF00, 0xFF01}
#: Study Root Query/Retrieve Information Model - FIND, MOVE and GET.
_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
_GET = "1.2.840.10008.5.1.4.1.2.2.3"
INCOMING_PREFIX = ".incoming-"


@dataclass(frozen=True)
class PacsStudy:
    """A study the PACS reported: its UID and how many instances it says it holds."""

    study_instance_uid: str
    n_instances: int | None


def _where(config: PacsConfig) -> str:
    return f"{config.remote_ae_title}@{config.remote_host}:{config.remote_port}"


class _Receiver:
    """C-STORE handler: writes each instance received into the current target folder."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.target: Path | None = None
        self.received = 0
        self.errors: list[str] = []

    def __call__(self, event: Any) -> int:
        with self._lock:
            target = self.target
        if target is None:
            log.warning("refused an instance from %s: no retrieve in progress", event.assoc.requestor.ae_title)
            return 0xC001  # cannot understand: nothing asked for it
        sop_uid = str(event.request.AffectedSOPInstanceUID)
        try:
            validate_uid(sop_uid, what="SOPInstanceUID")
            tmp = target / f".{sop_uid}.part"
            with open(tmp, "wb") as fh:
                fh.write(event.encoded_dataset())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target / f"{sop_uid}.dcm")
        except (DicomInputError, OSError) as exc:
            with self._lock:
                self.errors.append(str(exc))
            log.error("could not store a received instance: %s", exc)
            return 0xA700  # out of resources
        with self._lock:
            self.received += 1
        return 0x0000


@contextmanager
def _association(config: PacsConfig, *, model: str, receiver: _Receiver | None = None) -> Iterator[Any]:
    import_extra("pynetdicom", purpose="PACS retrieval (the pacs: config section)")
    from pynetdicom import ALL_TRANSFER_SYNTAXES, build_role, evt

    ae: Any = make_ae(config)
    ae.add_requested_context(_FIND)
    if model != _FIND:
        ae.add_requested_context(model)
    roles = []
    handlers = []
    if receiver is not None:  # C-GET: the instances come back on this association
        for sop_class in _GET_STORAGE_CLASSES:
            ae.add_requested_context(sop_class, ALL_TRANSFER_SYNTAXES)
            roles.append(build_role(sop_class, scp_role=True))
        handlers.append((evt.EVT_C_STORE, receiver))
    try:
        assoc = ae.associate(config.remote_host, config.remote_port, ae_title=config.remote_ae_title,
                             ext_neg=roles or None, evt_handlers=handlers or None)
    except OSError as exc:
        raise PacsError(f"Cannot connect to the PACS {_where(config)}: {exc}.") from exc
    if not assoc.is_established:
        raise PacsError(
            f"The PACS {_where(config)} refused or did not answer the association from {config.ae_title};"
            " check pacs.remote_* in the config and that the PACS knows ichpipe's AE title."
        )
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


def _find(assoc: Any, query: Dataset, config: PacsConfig) -> list[Dataset]:

    found: list[Dataset] = []
    final: int | None = None
    for status, identifier in assoc.send_c_find(query, _FIND):
        if not status or "Status" not in status:
            raise PacsError(f"The C-FIND to {_where(config)} got no answer (timed out or aborted).")
        code = int(status.Status)
        if code in _PENDING:
            if identifier is not None:
                found.append(identifier)
            continue
        final = code
    if final != 0x0000:
        raise PacsError(f"The C-FIND to {_where(config)} failed with status 0x{(final or 0):04X}.")
    return found


def _study_query(config: PacsConfig, today: date) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = ""
    ds.StudyDate = f"{today - timedelta(days=config.pull_days):%Y%m%d}-" if config.pull_days else ""
    ds.ModalitiesInStudy = config.pull_modality
    ds.NumberOfStudyRelatedInstances = ""
    return ds


def find_pacs_studies(config: PacsConfig, *, today: date | None = None) -> list[PacsStudy]:
    """Studies of the last ``pull_days`` days with a ``pull_modality`` series, as the PACS reports them.

    Raises
    ------
    ichpipe.errors.PacsError
        If the association or the query fails.
    """

    query = _study_query(config, today or date.today())
    with _association(config, model=_FIND) as assoc:
        answers = _find(assoc, query, config)
    studies = []
    for ds in answers:
        uid = str(ds.get("StudyInstanceUID", "") or "")
        count = ds.get("NumberOfStudyRelatedInstances")
        studies.append(PacsStudy(uid, int(count) if count not in (None, "") else None))
    return studies


def find_pacs_series(assoc: Any, study_uid: str, config: PacsConfig) -> list[str]:
    """SeriesInstanceUIDs of ``pull_modality`` in one study (on an open association)."""
    query = Dataset()
    query.QueryRetrieveLevel = "SERIES"
    query.StudyInstanceUID = study_uid
    query.SeriesInstanceUID = ""
    query.Modality = config.pull_modality
    uids = []
    for ds in _find(assoc, query, config):
        if str(ds.get("Modality", config.pull_modality) or "").upper() != config.pull_modality.upper():
            continue  # a PACS that ignores the Modality key
        uid = str(ds.get("SeriesInstanceUID", "") or "")
        if uid:
            uids.append(uid)
    return uids


def _check_retrieve(responses: Any, what: str, series_uid: str, config: PacsConfig) -> None:
    final: Dataset | None = None
    for status, _identifier in responses:
        if not status or "Status" not in status:
            raise PacsError(f"The {what} of series {series_uid} from {_where(config)} got no answer"
                            " (timed out or aborted).")
        if int(status.Status) in _PENDING:
            continue
        final = status
    if final is None:
        raise PacsError(f"The {what} of series {series_uid} from {_where(config)} ended without a final status.")
    code = int(final.Status)
    counts = [int(final.get(f"Number{kind}Suboperations", 0) or 0) for kind in ("OfCompleted", "OfFailed",
                                                                                  "OfWarning")]
    failed = counts[1]
    if code not in (0x0000, 0xB000) or failed:
        hint = ""
        if code == 0xA801 or (what == "C-MOVE" and code not in (0x0000, 0xB000, 0xFE00) and not any(counts)):
            # 0xA801 is the standard's "move destination unknown"; Orthanc answers 0xC000 with no
            # sub-operation at all for the same cause: nothing was even tried
            hint = (f"; no instance was sent: the PACS probably does not know the move destination"
                    f" {config.ae_title} - add it there with this host and port {config.move_port},"
                    " or use pacs.retrieve: get")
        elif code not in (0x0000, 0xB000) and not any(counts):
            hint = "; no instance was sent: the PACS refused the request (check its log)"
        raise PacsError(f"The {what} of series {series_uid} from {_where(config)} failed (status 0x{code:04X},"
                        f" {failed} failed sub-operations){hint}.")


def _retrieve_series(assoc: Any, study_uid: str, series_uid: str, config: PacsConfig) -> None:

    query = Dataset()
    query.QueryRetrieveLevel = "SERIES"
    query.StudyInstanceUID = study_uid
    query.SeriesInstanceUID = series_uid
    if config.retrieve == "get":
        responses = assoc.send_c_get(query, _GET)
        _check_retrieve(responses, "C-GET", series_uid, config)
    else:
        responses = assoc.send_c_move(query, config.ae_title, _MOVE)
        _check_retrieve(responses, "C-MOVE", series_uid, config)


@contextmanager
def _storage_scp(config: PacsConfig, receiver: _Receiver) -> Iterator[None]:
    """ichpipe's storage SCP for C-MOVE, listening only while a pull runs."""
    import_extra("pynetdicom", purpose="PACS retrieval (the pacs: config section)")
    from pynetdicom import ALL_TRANSFER_SYNTAXES, StoragePresentationContexts, evt

    ae: Any = make_ae(config)
    for cx in StoragePresentationContexts:
        ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    try:
        server = ae.start_server((config.move_bind_address, config.move_port), block=False,
                                 evt_handlers=[(evt.EVT_C_STORE, receiver)])
    except OSError as exc:
        raise PacsError(f"Cannot listen on {config.move_bind_address}:{config.move_port} for C-MOVE: {exc};"
                        " choose another pacs.move_port.") from exc
    try:
        yield
    finally:
        server.shutdown()


def pull_new_studies(inbox: Path, *, config: PacsConfig, exclude: Collection[str] = (),
                     today: date | None = None, folders: list[Path] | None = None) -> int:
    """Retrieve studies the PACS has and ichpipe has not seen into ``inbox``; return how many.

    Parameters
    ----------
    inbox:
        The batch inbox; each study lands in ``inbox/<StudyInstanceUID>/``.
    config:
        The ``pacs:`` section.
    exclude:
        StudyInstanceUIDs already handled (the ledger's), not pulled again.
    today:
        The date the look-back counts from (tests).
    folders:
        Receives the folder of each study pulled (complete when renamed into
        place, so the batch processes them in the same run, whatever its settle time).

    Raises
    ------
    ichpipe.errors.PacsError
        If the PACS cannot be queried, or some studies could not be retrieved
        (the others are still pulled; the message lists the failures).
    """

    inbox = Path(inbox)
    if not inbox.is_dir():
        raise PacsError(f"The inbox {inbox} is not a folder; cannot pull studies into it.")
    skip = set(exclude)
    new: list[str] = []
    for study in find_pacs_studies(config, today=today):
        uid = study.study_instance_uid
        try:
            validate_uid(uid, what="StudyInstanceUID")
        except DicomInputError as exc:
            log.warning("the PACS reported a study with an invalid UID; not pulled: %s", exc)
            continue
        if uid in skip or (inbox / uid).exists():
            continue
        new.append(uid)
    if len(new) > config.max_pull_studies:
        log.info("%d new studies on the PACS; pulling %d now, the rest next run", len(new), config.max_pull_studies)
        new = new[:config.max_pull_studies]
    if not new:
        return 0
    receiver = _Receiver()
    model = _GET if config.retrieve == "get" else _MOVE
    failures: list[str] = []
    pulled = 0
    scp = _storage_scp(config, receiver) if config.retrieve == "move" else _nothing()
    with scp, _association(config, model=model, receiver=receiver if config.retrieve == "get" else None) as assoc:
        for uid in new:
            incoming = inbox / f"{INCOMING_PREFIX}{uid}"
            shutil.rmtree(incoming, ignore_errors=True)
            try:
                incoming.mkdir()
                series = find_pacs_series(assoc, uid, config)
                receiver.received = 0
                receiver.target = incoming
                for series_uid in series:
                    _retrieve_series(assoc, uid, series_uid, config)
                receiver.target = None
                if receiver.received == 0:
                    shutil.rmtree(incoming, ignore_errors=True)
                    continue
                os.rename(incoming, inbox / uid)
                pulled += 1
                if folders is not None:
                    folders.append(inbox / uid)
                log.info("pulled study %s (%d instances) from %s", uid, receiver.received, _where(config))
            except (PacsError, OSError) as exc:
                receiver.target = None
                shutil.rmtree(incoming, ignore_errors=True)
                failures.append(f"study {uid}: {exc}")
                log.error("pulling study %s failed: %s", uid, exc)
                if not assoc.is_established:
                    break
    if failures:
        raise PacsError(f"{len(failures)} of {len(new)} new studies could not be pulled ({'; '.join(failures)}).")
    return pulled


@contextmanager
def _nothing() -> Iterator[None]:
    yield

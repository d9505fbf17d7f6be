"""Send ichpipe's outputs (DICOM SEG, Secondary Capture key image) to a DICOM node by C-STORE.

The files already carry the source study's StudyInstanceUID, so the PACS
files them under the right study. One association per call; every file must
be stored with a success or warning status, else :class:`PacsError`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from ichpipe.errors import PacsError
from ichpipe.extras import import_extra
from ichpipe.pipeline.config.pacs_config import PacsConfig

__all__ = ["StoreResult", "make_ae", "send_files"]

log = logging.getLogger(__name__)

#: C-STORE statuses that mean the object was stored (success and the warnings of PS3.4 B.2.3).
_STORED = {0x0000, 0xB000, 0xB006, 0xB007}


@dataclass(frozen=True)
class StoreResult:
    """One file sent: its SOP Instance UID and the status the node answered."""

    path: Path
    sop_instance_uid: str
    status: int
    series_instance_uid: str = ""


def make_ae(config: PacsConfig) -> object:
    """A pynetdicom AE with ichpipe's AE title and the configured timeouts."""
    import_extra("pynetdicom", purpose="PACS delivery and retrieval (the pacs: config section)")
    from pynetdicom import AE

    ae = AE(ae_title=config.ae_title)
    ae.acse_timeout = config.timeout_s
    ae.dimse_timeout = config.timeout_s
    ae.network_timeout = config.timeout_s
    ae.connection_timeout = config.timeout_s
    return ae


def _where(config: PacsConfig) -> str:
    return f"{config.remote_ae_title}@{config.remote_host}:{config.remote_port}"


def send_files(paths: Sequence[Path], *, config: PacsConfig) -> list[StoreResult]:
    """C-STORE ``paths`` to the configured node on one association.

    Parameters
    ----------
    paths:
        DICOM files (Part-10, with file meta).
    config:
        The ``pacs:`` section.

    Returns
    -------
    list of StoreResult
        One per file, in order.

    Raises
    ------
    ichpipe.errors.PacsError
        If a file cannot be read, the association is refused or aborted, or a
        file is not stored (the message names the file's SOP Instance UID and the status).
    """
    if not paths:
        return []
    datasets = []
    for path in paths:
        try:
            ds = pydicom.dcmread(path)
        except (InvalidDicomError, OSError, ValueError) as exc:
            raise PacsError(f"Cannot read {path} to send it: {exc}.") from exc
        datasets.append((Path(path), ds))
    ae = make_ae(config)
    contexts = sorted({(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)) for _, ds in datasets})
    for sop_class, syntax in contexts:
        ae.add_requested_context(sop_class, syntax)  # type: ignore[attr-defined]
    try:
        assoc = ae.associate(config.remote_host, config.remote_port,  # type: ignore[attr-defined]
                             ae_title=config.remote_ae_title)
    except OSError as exc:
        raise PacsError(f"Cannot connect to the PACS {_where(config)}: {exc}.") from exc
    if not assoc.is_established:
        raise PacsError(
            f"The PACS {_where(config)} refused or did not answer the association from {config.ae_title}; check"
            " pacs.remote_* in the config and that the PACS knows ichpipe's AE title."
        )
    results: list[StoreResult] = []
    try:
        for path, ds in datasets:
            status = assoc.send_c_store(ds)
            code = int(status.Status) if status and "Status" in status else None
            if code is None:
                raise PacsError(f"The PACS {_where(config)} did not answer the C-STORE of {path.name}"
                                f" (SOP Instance {ds.SOPInstanceUID}); the association was aborted or timed out.")
            if code not in _STORED:
                raise PacsError(f"The PACS {_where(config)} refused {path.name} (SOP Instance"
                                f" {ds.SOPInstanceUID}) with status 0x{code:04X}.")
            results.append(StoreResult(path, str(ds.SOPInstanceUID), code, str(ds.get("SeriesInstanceUID", ""))))
            log.info("sent %s to %s (status 0x%04X)", path.name, _where(config), code)
    finally:
        if assoc.is_established:
            assoc.release()
    return results

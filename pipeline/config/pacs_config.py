"""Configuration of PACS delivery and retrieval (the ``pacs:`` section of ``config.yaml``).

Kept apart from :mod:`ichpipe.pipeline.batch.pacs.store_scu` and :mod:`ichpipe.pipeline.batch.pacs.retrieve`
so that loading the configuration does not import pynetdicom.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = ["OUTPUT_NAMES", "PacsConfig", "ReplaceMethod", "RetrieveMethod", "check_ae_title"]

RetrieveMethod = Literal["move", "get"]
ReplaceMethod = Literal["off", "orthanc"]

#: Outputs of ``run`` that can be sent (names as in the study report's ``outputs``).
OUTPUT_NAMES = ("seg", "secondary_capture")


def check_ae_title(value: str, name: str) -> str:
    """Return ``value`` if it is a valid AE title (1-16 printable ASCII characters, no backslash).

    Raises
    ------
    ValueError
        Naming the argument, if it is not.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"Argument '{name}' must be an AE title (1 to 16 characters); got {value!r}.")
    if len(value) > 16 or "\\" in value or not value.isascii() or not value.isprintable():
        raise ValueError(
            f"Argument '{name}' must be at most 16 printable ASCII characters without backslash; got {value!r}."
        )
    return value


def _check_port(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"Argument '{name}' must be a TCP port between 1 and 65535; got {value!r}.")


@dataclass(frozen=True)
class PacsConfig:
    """The DICOM node that ``batch``/``watch`` send results to and pull studies from.

    Parameters
    ----------
    ae_title:
        ichpipe's own AE title (calling AE, and the C-MOVE destination the
        PACS must know with this host and ``move_port``).
    remote_host, remote_port, remote_ae_title:
        The PACS (or any DICOM node): address, DICOM port and AE title.
    timeout_s:
        Timeout of connections, DIMSE messages and idle network reads.
    send:
        After each processed study, send its outputs by C-STORE.
    send_outputs:
        Which outputs: ``seg`` (DICOM SEG) and/or ``secondary_capture`` (key image).
    pull:
        Before each batch run, query the PACS (C-FIND) for recent studies of
        ``pull_modality`` and retrieve new ones into the inbox.
    retrieve:
        ``move`` (C-MOVE to a storage SCP ichpipe starts on ``move_port``) or
        ``get`` (C-GET on the same association; not every PACS supports it).
    move_port:
        Port of ichpipe's temporary storage SCP during a C-MOVE.
    move_bind_address:
        Address that SCP listens on (``127.0.0.1`` when the PACS runs on this machine).
    pull_modality:
        Modality of the series retrieved (others, e.g. SEG or key images, are not).
    pull_days:
        Look at studies of the last this many days (StudyDate); 0 looks at all.
    max_pull_studies:
        Most studies retrieved in one run (the rest wait for the next run).
    replace_previous:
        After sending a series' new outputs, delete the ones ichpipe sent
        earlier for the same source series (recorded under
        ``OUT/.ichpipe/delivered/``). DICOM has no delete, so this needs the
        PACS's web API: ``orthanc`` (Orthanc's REST API at ``rest_url``).
        ``off`` keeps them; each run's series still differ by number, date
        and method (:mod:`~ichpipe.pipeline.outputs.series_naming`).
    rest_url:
        Base URL of the PACS's web API (``http://127.0.0.1:8042``) for
        ``replace_previous``.
    """

    ae_title: str = "ICHPIPE"
    remote_host: str = "127.0.0.1"
    remote_port: int = 11112
    remote_ae_title: str = "PACS"
    timeout_s: float = 30.0
    send: bool = False
    send_outputs: tuple[str, ...] = OUTPUT_NAMES
    pull: bool = False
    retrieve: RetrieveMethod = "move"
    move_port: int = 11113
    move_bind_address: str = "0.0.0.0"
    pull_modality: str = "CT"
    pull_days: int = 2
    max_pull_studies: int = 100
    replace_previous: ReplaceMethod = "off"
    rest_url: str | None = None

    def __post_init__(self) -> None:
        check_ae_title(self.ae_title, "ae_title")
        check_ae_title(self.remote_ae_title, "remote_ae_title")
        _check_port(self.remote_port, "remote_port")
        _check_port(self.move_port, "move_port")
        if not self.remote_host.strip():
            raise ValueError("Argument 'remote_host' must name the PACS host.")
        if not self.move_bind_address.strip():
            raise ValueError("Argument 'move_bind_address' must be an address to listen on, e.g. 0.0.0.0.")
        if not math.isfinite(self.timeout_s) or self.timeout_s <= 0:
            raise ValueError(f"Argument 'timeout_s' must be a positive number of seconds; got {self.timeout_s!r}.")
        unknown = [o for o in self.send_outputs if o not in OUTPUT_NAMES]
        if unknown:
            raise ValueError(
                f"Argument 'send_outputs' may hold {', '.join(OUTPUT_NAMES)}; got {unknown[0]!r}."
            )
        if not self.pull_modality.strip() or len(self.pull_modality) > 16:
            raise ValueError(f"Argument 'pull_modality' must be a DICOM modality such as CT; "
                             f"got {self.pull_modality!r}.")
        if self.pull_days < 0:
            raise ValueError(f"Argument 'pull_days' must be 0 (all dates) or more; got {self.pull_days}.")
        if self.max_pull_studies < 1:
            raise ValueError(f"Argument 'max_pull_studies' must be at least 1; got {self.max_pull_studies}.")
        if self.replace_previous not in ("off", "orthanc"):
            raise ValueError(f"Argument 'replace_previous' must be off or orthanc; got {self.replace_previous!r}.")
        if self.replace_previous != "off" and not (self.rest_url or "").startswith(("http://", "https://")):
            raise ValueError("Argument 'rest_url' must be the PACS's web API (http://host:port) when"
                             " 'replace_previous' is on.")

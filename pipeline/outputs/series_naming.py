"""Series numbers and descriptions of ichpipe's DICOM outputs, which tell runs apart.

Every run gives its SEG, key image (SC), SR and derived series a
SeriesNumber and SeriesDescription that name what they are, the method and
when the run made them, so re-processing never adds indistinguishable copies
to a PACS:

* ``SeriesNumber = K x 10**8 + MMDDhhmm`` of the run's local time, where the
  first digit ``K`` is the kind (:data:`KINDS`: 1 SEG, 2 key image, 3 SR,
  4 CT resampled to a regular grid, 5 SEG on that grid). A SEG made on
  2 March at 08:05 is ``103020805``; its SR ``303020805``. The year is not
  in the number (SeriesNumber is at most 2**31 - 1); it is in SeriesDate and
  the description.
* ``SeriesDescription = "ichpipe <kind> <method> <YYYY-MM-DD hh:mm>"`` (at most
  64 characters), the method being the segmenter name and, for a network,
  ``@`` and the first 8 hex digits of its checkpoint's SHA-256, e.g.
  ``ichpipe SEG sa_cbam_unet_slim@3f2a91c0 2026-03-02 08:05``.
* SeriesDate/SeriesTime are the run's date and time; Manufacturer is ``ichpipe``.

To find earlier outputs of the same kind for the same source series (to
replace them in a PACS): Manufacturer ``ichpipe``, ``SeriesNumber // 10**8``
equal to the kind's digit (:func:`kind_of_series_number`), and the source
series in the SEG's ReferencedSeriesSequence (SR: the evidence's
CurrentRequestedProcedureEvidenceSequence; SC: SourceImageSequence's
instances); the newest has the latest SeriesDate + SeriesTime.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["KINDS", "SeriesIdentity", "kind_of_series_number", "method_label", "series_identity"]

#: Output kind -> (first digit of the SeriesNumber, word in the description).
KINDS: dict[str, tuple[int, str]] = {
    "seg": (1, "SEG"),
    "sc": (2, "key image"),
    "sr": (3, "SR"),
    "ct_tilt_eq": (4, "CT regular grid"),
    "seg_tilt_eq": (5, "SEG regular grid"),
}

_DESCRIPTION_MAX = 64


@dataclass(frozen=True)
class SeriesIdentity:
    """SeriesNumber and SeriesDescription of one output series."""

    number: int
    description: str


def method_label(segmenter: str, checkpoint_sha256: str | None = None) -> str:
    """``name`` or ``name@<first 8 hex digits of the checkpoint>``.

    Examples
    --------
    >>> method_label("threshold")
    'threshold'
    >>> method_label("unet", "3f2a91c0ffee" + "0" * 52)
    'unet@3f2a91c0'
    """
    return f"{segmenter}@{checkpoint_sha256[:8]}" if checkpoint_sha256 else segmenter


def series_identity(kind: str, *, method: str, when: datetime) -> SeriesIdentity:
    """The SeriesNumber and SeriesDescription of output ``kind`` made by ``method`` at ``when``.

    Parameters
    ----------
    kind:
        One of :data:`KINDS`.
    method:
        The method label (:func:`method_label`).
    when:
        The run's time (local).

    Raises
    ------
    ValueError
        If ``kind`` is unknown.

    Examples
    --------
    >>> ident = series_identity("seg", method="threshold", when=datetime(2026, 3, 2, 8, 5))
    >>> ident.number, ident.description
    (103020805, 'ichpipe SEG threshold 2026-03-02 08:05')
    """
    if kind not in KINDS:
        raise ValueError(f"Argument 'kind' must be one of {', '.join(KINDS)}; got {kind!r}.")
    digit, word = KINDS[kind]
    number = digit * 10**8 + int(when.strftime("%m%d%H%M"))
    stamp = when.strftime("%Y-%m-%d %H:%M")
    room = _DESCRIPTION_MAX - len(f"ichpipe {word}  {stamp}")
    return SeriesIdentity(number, f"ichpipe {word} {method[:room]} {stamp}")


def kind_of_series_number(number: int) -> str | None:
    """The output kind a SeriesNumber of this scheme stands for, or ``None``.

    Examples
    --------
    >>> kind_of_series_number(303020805), kind_of_series_number(2)
    ('sr', None)
    """
    digit, rest = divmod(int(number), 10**8)
    if not 1010000 <= rest <= 12312359:
        return None
    return next((kind for kind, (d, _) in KINDS.items() if d == digit), None)

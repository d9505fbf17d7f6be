"""A static HTML quality-control page: contact sheet of key images and a sortable table.

One page per batch run (``OUT/batch-runs/<run id>.html``) and per patient
timeline (``ichpipe timeline --patient ID --html FILE``). The page is one
self-contained file: key images are embedded as PNG data URIs (thumbnails),
the table sorts with a few lines of inline JavaScript (click a column head;
``#sort=<column>:<asc|desc>`` in the address sorts on load), and nothing is
fetched from any network. Values are escaped; patient identifiers appear only
when the caller puts them in the rows.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

__all__ = ["QCRow", "render_qc_page", "row_from_report", "short_uids", "thumbnail_data_uri"]

log = logging.getLogger(__name__)

_COLUMNS = (
    ("label", "case", "text"),
    ("status", "status", "text"),
    ("volume_ml", "volume mL", "num"),
    ("abc2_ml", "ABC/2 mL", "num"),
    ("delta_ml", "change mL", "num"),
    ("expansion", "expansion", "text"),
    ("flags", "quality flags", "text"),
    ("when", "acquired", "text"),
)


@dataclass(frozen=True)
class QCRow:
    """One case (a series of a batch, or a scan of a timeline) on the page."""

    label: str
    status: str = "processed"
    volume_ml: float | None = None
    abc2_ml: float | None = None
    delta_ml: float | None = None
    expansion: str | None = None
    flags: Sequence[str] = ()
    when: str | None = None
    image: str | None = None
    link: str | None = None
    note: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


_UID = re.compile(r"\b\d+(?:\.\d+){4,}\b")


def short_uids(text: str, *, keep: int = 8) -> str:
    """``text`` with every DICOM UID longer than ``keep + 4`` characters shortened to ``...`` + its last ``keep``.

    Examples
    --------
    >>> short_uids("series 1.2.826.0.1.3680043.8.498.94352961485221411954490881193501866399")
    'series ...01866399'
    """
    return _UID.sub(lambda m: m.group(0) if len(m.group(0)) <= keep + 4 else "..." + m.group(0)[-keep:], text)


def thumbnail_data_uri(path: Path, *, width: int = 256) -> str | None:
    """A PNG data URI of the image at ``path`` scaled to ``width`` pixels, or ``None`` when unreadable."""
    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
            if rgb.width > width:
                rgb = rgb.resize((width, max(1, round(rgb.height * width / rgb.width))), Image.Resampling.LANCZOS)
            buf = io.BytesIO()
            rgb.save(buf, format="PNG", optimize=True)
    except (OSError, ValueError) as exc:
        log.info("no thumbnail of %s: %s", path, exc)
        return None
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def row_from_report(report: Mapping[str, Any], *, label: str, status: str = "processed",
                    folder: Path | None = None, link: str | None = None) -> QCRow:
    """A row from a study report (``report.json``): volumes, flags, change since the baseline, key image."""
    hematoma = report.get("hematoma") or {}
    quality = report.get("quality") if isinstance(report.get("quality"), Mapping) else {}
    flags = [str(f.get("code")) for f in (quality or {}).get("flags") or [] if isinstance(f, Mapping)]
    serial = report.get("serial") if isinstance(report.get("serial"), Mapping) else {}
    image = None
    if folder is not None and (folder / "key_image.png").is_file():
        image = thumbnail_data_uri(folder / "key_image.png")
    return QCRow(label=label, status=status, volume_ml=hematoma.get("volume_ml"), abc2_ml=hematoma.get("abc2_ml"),
                 delta_ml=(serial or {}).get("delta_ml"), expansion=(serial or {}).get("expansion"), flags=flags,
                 when=report.get("acquisition_datetime"), image=image, link=link)


def _cell(value: Any, kind: str) -> str:
    if value is None or value == "" or value == []:
        return '<td data-v="">&ndash;</td>'
    if kind == "num":
        return f'<td class="num" data-v="{float(value):.6f}">{float(value):.1f}</td>'
    if isinstance(value, list | tuple):
        text = ", ".join(str(v) for v in value)
        return f'<td class="flag" data-v="{html.escape(text)}">{html.escape(text)}</td>'
    text = str(value).replace("_", " ")
    return f'<td data-v="{html.escape(str(value))}">{html.escape(text)}</td>'


def _card(row: QCRow) -> str:
    image = (f'<img src="{row.image}" alt="key image of {html.escape(row.label)}">' if row.image
             else '<div class="noimg">no key image</div>')
    volume = "&ndash;" if row.volume_ml is None else f"{float(row.volume_ml):.1f} mL"
    abc2 = "" if row.abc2_ml is None else f" &middot; ABC/2 {float(row.abc2_ml):.1f}"
    flags = f'<div class="flag">{html.escape(", ".join(row.flags))}</div>' if row.flags else ""
    verdict = ""
    if row.expansion:
        shown = html.escape(row.expansion.replace("_", " "))
        verdict = f'<div class="verdict {html.escape(row.expansion)}">{shown}</div>'

    return (f'<figure class="card {html.escape(row.status)}">{image}<figcaption><b>{html.escape(row.label)}</b>'
            f"<div>{volume}{abc2}</div>{verdict}{flags}</figcaption></figure>")


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:16px;background:#f6f6f4;color:#222}
h1{font-size:20px;margin:0 0 4px} .sub{color:#555;margin-bottom:12px}
.sheet{display:flex;flex-wrap:wrap;gap:10px;margin-bottom:16px}
.card{margin:0;width:200px;background:#fff;border:1px solid #ccc;border-radius:4px;padding:4px}
.card img{width:192px;display:block;background:#000}
.noimg{height:120px;background:#ddd;text-align:center;line-height:120px}
.card.failed{border-color:#c00} figcaption{font-size:12px;margin-top:3px;overflow-wrap:anywhere}
.flag{color:#b35c00} .verdict.expanded{color:#c00;font-weight:bold} .verdict.not_expanded{color:#060}
table{border-collapse:collapse;background:#fff} th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{cursor:pointer;background:#e8e8e4;user-select:none} th[aria-sort=ascending]::after{content:" \\25B2"}
th[aria-sort=descending]::after{content:" \\25BC"} td.num{text-align:right}
.foot{color:#777;margin-top:12px;font-size:12px}
"""

_SCRIPT = """
(function(){
  var table=document.getElementById('cases'); if(!table) return;
  var heads=table.tHead.rows[0].cells;
  function key(row,i,num){var v=row.cells[i].getAttribute('data-v');
    if(num){return v===''?null:parseFloat(v);} return v.toLowerCase();}
  function sortBy(i,dir){
    var num=heads[i].getAttribute('data-kind')==='num', body=table.tBodies[0];
    var rows=Array.prototype.slice.call(body.rows);
    rows.sort(function(a,b){var x=key(a,i,num),y=key(b,i,num);
      if(x===y) return 0; if(x===null) return 1; if(y===null) return -1;
      return (x<y?-1:1)*(dir==='desc'?-1:1);});
    rows.forEach(function(r){body.appendChild(r);});
    for(var j=0;j<heads.length;j++){heads[j].removeAttribute('aria-sort');}
    heads[i].setAttribute('aria-sort',dir==='desc'?'descending':'ascending');
  }
  for(var i=0;i<heads.length;i++){(function(i){heads[i].addEventListener('click',function(){
    sortBy(i,heads[i].getAttribute('aria-sort')==='ascending'?'desc':'asc');});})(i);}
  var m=/sort=([a-z0-9_]+):(asc|desc)/.exec(location.hash);
  if(m){for(var k=0;k<heads.length;k++){if(heads[k].getAttribute('data-col')===m[1]){sortBy(k,m[2]);}}}
})();
"""


def render_qc_page(rows: Sequence[QCRow], *, title: str, subtitle: str = "", footer: str = "",
                   extra_html: str = "") -> str:
    """The whole page as a string (write it with :func:`ichpipe.atomic.atomic_write`).

    Parameters
    ----------
    rows:
        One per case, in the order of the contact sheet (the table sorts itself).
    title, subtitle, footer:
        Plain text (escaped).
    extra_html:
        Trusted HTML inserted after the table (e.g. an embedded plot); never user text.
    """
    heads = "".join(f'<th data-col="{col}" data-kind="{kind}">{html.escape(name)}</th>' for col, name, kind in _COLUMNS)
    body = []
    for row in rows:
        cells = [_cell(getattr(row, col), kind) for col, _, kind in _COLUMNS]
        label = html.escape(row.label)
        if row.link:
            cells[0] = f'<td data-v="{label}"><a href="{html.escape(row.link)}">{label}</a></td>'
        body.append(f"<tr>{''.join(cells)}</tr>")
    cards = "".join(_card(r) for r in rows)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:;"
        " style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><div class=\"sub\">{html.escape(subtitle)}</div>"
        f"<div class=\"sheet\">{cards}</div>"
        f"<table id=\"cases\"><thead><tr>{heads}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        f"{extra_html}<div class=\"foot\">{html.escape(footer)}</div>"
        f"<script>{_SCRIPT}</script></body></html>\n"
    )

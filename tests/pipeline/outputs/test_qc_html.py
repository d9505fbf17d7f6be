"""The batch and timeline QC pages, rendered in headless Chromium (Debian ``chromium``).

Chromium loads each page from a file with networking off; the test checks
the DOM after the page's script ran (``#sort=volume_ml:desc`` sorts the table
by volume, largest first: compared with the reports' volumes), that every key
image is embedded (data URIs, nothing fetched), and that the screenshot is a
real picture (not blank). Skips, saying why, only when Chromium is absent.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from ichpipe.pipeline.cli import cli
from ichpipe.pipeline.outputs.qc_html import QCRow, render_qc_page
from ichpipe.pipeline.synthetic.phantom import PhantomSpec, write_phantom_study

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run")


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium is not installed (Debian package chromium; .ci/run installs it)")
    return exe


def _render(page: Path, tmp: Path, *, fragment: str = "") -> tuple[str, np.ndarray]:
    """The DOM after scripts ran, and the screenshot's pixels."""
    exe = _chromium()
    url = page.resolve().as_uri() + fragment
    profile = tmp / "profile"
    dom = subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
                         capture_output=True, text=True, timeout=180, check=True).stdout
    shot = tmp / "shot.png"
    subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}",
                    "--window-size=1200,900", "--hide-scrollbars", url],
                   capture_output=True, text=True, timeout=180, check=True)
    with Image.open(shot) as img:
        pixels = np.asarray(img.convert("RGB"))
    return dom, pixels


def _rows(dom: str) -> list[list[str]]:
    body = dom.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [re.findall(r'data-v="([^"]*)"', row) for row in body.split("</tr>") if "<td" in row]


def test_batch_page_renders_sorted_with_every_key_image(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    for k, volume in enumerate((8.0, 30.0, 16.0)):
        write_phantom_study(inbox / f"case{k}", PhantomSpec(seed=40 + k, rows=96, columns=96, n_slices=12,
                                                            volume_ml=volume, patient_id=f"QC{k}"))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"store:\n  path: {tmp_path / 'store.sqlite'}\nbatch:\n  settle_s: 0\n")
    result = CliRunner().invoke(cli, ["batch", "--inbox", str(inbox), "--out", str(tmp_path / "out"),
                                      "--segmenter", "threshold", "--json", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    page = Path(summary["summary_files"]["html"])
    assert page.is_file() and page.suffix == ".html"
    reports = [json.loads((Path(i["output_dir"]) / "report.json").read_text()) for i in summary["items"]]
    dom, pixels = _render(page, tmp_path, fragment="#sort=volume_ml:desc")
    volumes = [float(r[2]) for r in _rows(dom)]
    assert volumes == pytest.approx(sorted((r["hematoma"]["volume_ml"] for r in reports), reverse=True), abs=1e-4)
    assert dom.count('src="data:image/png;base64,') == 3
    assert "http://" not in dom and "https://" not in dom
    assert 'aria-sort="descending"' in dom
    assert pixels.shape[0] >= 800 and pixels.std() > 20  # a real picture, not a blank page


def test_page_escapes_values_and_sorts_missing_last(tmp_path: Path) -> None:
    rows = [QCRow(label="<b>x</b>", volume_ml=None), QCRow(label="a", volume_ml=3.0), QCRow(label="b", volume_ml=1.0)]
    page = tmp_path / "p.html"
    page.write_text(render_qc_page(rows, title="t <script>"), encoding="utf-8")
    text = page.read_text()
    assert "<b>x</b>" not in text and "&lt;b&gt;x&lt;/b&gt;" in text and "t &lt;script&gt;" in text
    dom, _ = _render(page, tmp_path, fragment="#sort=volume_ml:asc")
    assert [r[0] for r in _rows(dom)] == ["b", "a", "&lt;b&gt;x&lt;/b&gt;"]


def test_timeline_page_shows_change_and_verdict(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"store:\n  path: {tmp_path / 'store.sqlite'}\n")
    for k, (volume, hour) in enumerate(((10.0, 0), (25.0, 5))):
        study = tmp_path / f"s{k}"
        write_phantom_study(study, PhantomSpec(seed=60 + k, rows=96, columns=96, n_slices=12, volume_ml=volume,
                                               patient_id="TLPAGE", accession_number=f"A{k}",
                                               acquisition_datetime=datetime(2025, 5, 1, 10 + hour)))
        run = CliRunner().invoke(cli, ["run", "--study", str(study), "--out", str(tmp_path / "out"),
                                       "--segmenter", "threshold", "--config", str(cfg)])
        assert run.exit_code == 0, run.output
    page = tmp_path / "timeline.html"
    result = CliRunner().invoke(cli, ["timeline", "--patient", "TLPAGE", "--html", str(page), "--outputs",
                                      str(tmp_path / "out"), "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    dom, pixels = _render(page, tmp_path)
    rows = _rows(dom)
    assert [r[5] for r in rows] == ["baseline", "expanded"]
    assert float(rows[1][4]) == pytest.approx(float(rows[1][2]) - float(rows[0][2]), abs=1e-3)
    assert "expansion (contest_2023e" in dom and dom.count('src="data:image/png;base64,') == 2
    assert pixels.std() > 20

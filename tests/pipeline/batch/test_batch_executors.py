"""The batch on a local process pool and on a Dask distributed cluster (a LocalCluster on 127.0.0.1)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from batch_support import assert_clean_outputs, valid_study, write_config

from ichpipe.pipeline.batch.ledger import list_ledger
from ichpipe.pipeline.batch.options import BatchOptions
from ichpipe.pipeline.batch.runner import run_batch
from ichpipe.pipeline.config import load_config
from ichpipe.pipeline.serial.store import open_store

N_STUDIES = 4


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("executor-template")
    for i in range(N_STUDIES):
        valid_study(root / f"s{i}", 300 + i)
    return root


def _setup(template: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    shutil.copytree(template, inbox)
    return inbox, out, write_config(tmp_path / "cfg.json", store=tmp_path / "store.sqlite")


def _check(config_file: Path, out: Path) -> None:
    with open_store(load_config(config_file).store) as store:
        rows = list_ledger(store)
    assert len(rows) == N_STUDIES and all(r.status == "done" and r.attempts == 1 for r in rows)
    assert len(assert_clean_outputs(out)) == N_STUDIES


@pytest.mark.slow
def test_process_pool(template: Path, tmp_path: Path) -> None:
    inbox, out, config_file = _setup(template, tmp_path)
    config = load_config(config_file)
    report = run_batch(BatchOptions(inbox=inbox, out=out, segmenter="threshold", workers=2), config)
    assert report.exit_code == 0 and report.counts["processed"] == N_STUDIES and report.workers == 2
    _check(config_file, out)


#: ``make test`` installs every extra ([dev]); a plain install may lack Dask.
DASK_EXTRA = "the Dask executor needs the [dask] extra: pip install 'ichpipe[dask]'"


@pytest.mark.slow
def test_dask_local_cluster(template: Path, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed", reason=DASK_EXTRA)
    import dask
    inbox, out, config_file = _setup(template, tmp_path)
    config = load_config(config_file)
    # Worker threads (processes=False) over real TCP on the loopback; the dashboard on a free port.
    # Dask's scratch space in the test's folder, not a dask-scratch-space left in /tmp
    with dask.config.set({"temporary-directory": str(tmp_path / "dask")}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp",
                                     host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster:
        options = BatchOptions(inbox=inbox, out=out, segmenter="threshold", executor="dask",
                               scheduler=cluster.scheduler_address)
        report = run_batch(options, config)
        assert report.exit_code == 0 and report.counts["processed"] == N_STUDIES and report.executor == "dask"
        _check(config_file, out)
        # Incremental on Dask too: the second run sends nothing to the cluster.
        again = run_batch(options, config)
        assert again.counts["skipped"] == N_STUDIES and again.counts["processed"] == 0


def test_unreachable_scheduler_is_a_usage_error(template: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("distributed", reason=DASK_EXTRA)
    import ichpipe.pipeline.batch.executors
    from ichpipe.errors import UsageError

    monkeypatch.setattr(ichpipe.pipeline.batch.executors, "DASK_CONNECT_TIMEOUT_S", 2.0)

    inbox, out, config_file = _setup(template, tmp_path)
    config = load_config(config_file)
    import socket

    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    options = BatchOptions(inbox=inbox, out=out, segmenter="threshold", executor="dask",
                           scheduler=f"tcp://127.0.0.1:{port}")
    with pytest.raises(UsageError, match="Dask scheduler"):
        run_batch(options, config)

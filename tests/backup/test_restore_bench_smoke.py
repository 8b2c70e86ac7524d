"""`bench/restore_bench.py` runs end to end at a tiny size and prints every figure of issue 26."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_restore_bench_prints_every_figure(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "restore_bench.py"), "--size-mib",
                          "4", "--rounds", "1", "--files", "20", "--no-offsite", "--workdir",
                          str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    for figure in ("restore / floor", "verify / integrity_check", "longest commit during a "
                   "restore", "that restore's swap", "GET /api/backup over HTTP, 20 canonical"):
        assert figure in run.stdout
    assert "/ 0  no error" in run.stdout  # the writer met no error across the restore
    for figure in ("the swap: its method, pages written / pages", "every page written (backup "
                   "API)", "SHA-256 of the file alone / integrity_check"):
        assert figure in run.stdout
    assert " pages, " in run.stdout  # the page swap ran (sqlean.py is a test need)
    assert list(tmp_path.iterdir()) == []  # the bench cleans up after itself


@pytest.mark.slow
def test_the_off_site_figures_run_alone(tmp_path):
    pytest.importorskip("pyrage")
    pytest.importorskip("zstandard")
    if not (shutil.which("zstd") and shutil.which("age")):
        pytest.skip("the baseline needs the zstd and age tools")
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "restore_bench.py"), "--size-mib",
                          "4", "--files", "0", "--no-restore", "--offsite-rounds", "2",
                          "--workdir", str(tmp_path)], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "zstd -T2 -3 | age -r, to a file, fsynced" in run.stdout
    assert "throughput / that of zstd | age" in run.stdout
    assert "restore / floor" not in run.stdout  # --no-restore skipped those figures
    assert list(tmp_path.iterdir()) == []

"""`bench/restore_bench.py` runs end to end at a tiny size and prints every figure of issue 26."""
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

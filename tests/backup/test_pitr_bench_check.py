"""bench/pitr_bench.py's check: the worst lag against the RPO target, and the share of sampled
restores that failed against --max-failed-share (each over its bound fails the run)."""
import importlib.util
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "pitr_bench.py"


def bench():
    spec = importlib.util.spec_from_file_location("mc_bench_pitr", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_more_failed_restores_than_allowed_fail_the_check():
    check = bench().check
    lags = [0.4] * 18
    status, lines = check(lags, 2, 2.0, 0.1)  # 2 of 20 failed: 10 %, allowed
    assert status == 0 and lines[1].endswith(": ok")
    status, lines = check(lags, 3, 2.0, 0.1)  # 3 of 21: over
    assert status == 3 and "restores failed 3/21" in lines[1] and lines[1].endswith("FAILED")
    assert check(lags, 3, 2.0, 0.2)[0] == 0
    assert check([0.4, 2.5], 0, 2.0, 0.1)[0] == 1  # the RPO is over
    assert check([], 5, 2.0, 1.0)[0] == 2  # nothing restored at all


def test_a_share_outside_0_to_1_is_refused_without_a_traceback():
    done = subprocess.run([sys.executable, str(BENCH), "--max-failed-share", "1.5"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--max-failed-share: must be between 0 and 1" in done.stderr
    assert "Traceback" not in done.stderr

"""A short run of bench/load.py: concurrent clients against a real server keep every invariant."""
import importlib.util
from pathlib import Path

LOAD = Path(__file__).resolve().parents[2] / "bench" / "load.py"


def load_module():
    spec = importlib.util.spec_from_file_location("mc_bench_load", LOAD)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_short_load_run_keeps_every_invariant(tmp_path):
    result = load_module().run_load(clients=8, seconds=6, workdir=tmp_path, threads=4)
    # Memory is judged by the full run (bench/load.py, 90 s): 6 s is all cache warm-up.
    failed = [(name, detail) for name, ok, detail in result["rows"]
              if not ok and not name.startswith("server memory")]
    assert failed == [], (failed, result["figures"])
    figures = result["figures"]
    assert figures["backups_made"] > 0 and figures["deleted"] > 0
    assert set(figures["by_op"]) == set(load_module().MIX)  # every kind of call was made

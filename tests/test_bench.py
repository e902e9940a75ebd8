"""`make bench` runs end to end (both pipelines, real models) on small inputs.
It measures; it asserts nothing about speed (timings belong in the README)."""

import json
import subprocess
import sys

import pytest

from benchmarks.bench import table
from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def test_benchmark_measures_every_pipeline_and_detector(tiny, tmp_path):
    root, model_dir, _ = tiny
    out = tmp_path / "results.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.bench", "--repeats", "1", "--model", str(model_dir),
                           "--scenes", str(root / "data" / "raw" / "sample" / "scenes"), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    for kind in ("maskdet", "maskdet_ultralight_640x480", "maskdet_blazeface", "classic"):
        r = results[kind]
        assert r["frames"] >= 6 and 0 < r["p50_ms"] <= r["p95_ms"] and r["images_per_s"] > 0
        assert r["peak_rss_mb"] > 50
    assert results["maskdet"]["tensorflow_loaded"] is (results["maskdet"]["runtime"] == "keras")
    assert results["maskdet_blazeface"]["detector"] == "blazeface"
    assert results["maskdet"]["detector_input"] == "400x300"  # as params.yaml sets it
    assert results["maskdet_ultralight_640x480"]["detector_input"] == "640x480"
    assert results["classic"]["tensorflow_loaded"]
    assert set(results["detectors"]) == {"ultralight 320x240", "ultralight 400x300", "ultralight 480x360",
                                         "ultralight 640x480", "blazeface 192x192", "res10 (classic) 300x300"}
    assert all(r["p50_ms"] > 0 and 0 <= r["recall_masked"] <= 1 for r in results["detectors"].values())
    assert results["faces_per_frame"][0] == 1 and results["faces_per_frame"][-1] == 6
    assert "| p50 latency per 640x480 frame (ms) |" in done.stdout and table(results) in done.stdout

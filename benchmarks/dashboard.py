"""The dashboard in a real browser, measured with the trained model: the
webcam's frames per second and round trip with the default detector and with
BlazeFace, a soak of webcam frames with the kernel's memory and frame rate per
10-second window, and the memory of each kernel with three visitors at once.

The measurements are the browser tests' own (``tests/test_dashboard_browser.py``:
the real Voila server and its kernels, headless Chromium with a fake camera
playing rendered scenes, everything on this machine's cores), run here on the
model ``make repro`` trained instead of the tests' tiny one.

    python -m benchmarks.dashboard           (or `make bench-dashboard`)

Results go to benchmarks/dashboard.json, from which tools/docs.py writes the
figures of docs/dashboard.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.bench import measured_on
from benchmarks.project import ROOT, tree_commit

# The browser tests that write the measurements (test-artifacts/ in `make test`).
TESTS = "webcam_frames or webcam_soak or three_visitors"
MEASURED = {"webcam": "webcam.json", "soak": "webcam-soak.json", "visitors": "dashboard-sessions.json"}


def measure(model: Path, soak_s: int) -> dict:
    """Run the browser tests on ``model`` and collect what they wrote."""
    with tempfile.TemporaryDirectory(prefix="maskdet-dashboard-") as folder:
        env = {
            **os.environ,
            "MASKDET_BROWSER_MODEL": str(model.resolve()),
            "MASKDET_SOAK_S": str(soak_s),
            "MASKDET_ARTIFACTS": folder,
            "CI": "true",  # no Chromium is a failure here, not a skipped measurement
        }
        command = [sys.executable, "-m", "pytest", "tests/test_dashboard_browser.py", "-k", TESTS, "-q"]
        done = subprocess.run(command, cwd=ROOT, env=env)
        if done.returncode != 0:
            raise SystemExit(f"benchmark: the browser tests failed (exit {done.returncode}); see their output above")
        return {key: json.loads((Path(folder) / name).read_text()) for key, name in MEASURED.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.dashboard", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=str(ROOT / "models"), help="model folder (default: models/, `make repro`'s)")
    parser.add_argument("--soak", type=int, default=120, metavar="SECONDS", help="webcam soak length (default 120)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "dashboard.json"), help="results JSON")
    args = parser.parse_args(argv)
    model = Path(args.model)
    if not (model / "metadata.json").is_file():
        print(f"{model}: no trained model; run `make repro` first", file=sys.stderr)
        return 2
    if args.soak < 20 or args.soak % 10:
        parser.error(f"--soak {args.soak}: a multiple of 10 seconds, at least 20 (the soak is read in 10-s windows)")
    from maskdet.io.atomic import write_json_atomic

    commit = tree_commit()  # of the code measured, before anything changes while it runs
    print(f"benchmark: the dashboard in Chromium with {model} (about {2 + args.soak // 60} min) ...", file=sys.stderr)
    metadata = json.loads((model / "metadata.json").read_text())
    predict = metadata.get("params", {}).get("predict", {})  # the settings the dashboard predicts with
    detector = predict.get("detector", "centerface")
    size = predict.get(f"{detector}_input")
    results = {
        **measure(model, args.soak),
        "model": metadata.get("backbone"),
        "detector": f"{detector} {size[0]}x{size[1]}" if size else detector,
        "commit": commit,
        **measured_on(),
    }
    write_json_atomic(Path(args.out), results)
    webcam, soak = results["webcam"], results["soak"]["windows"]
    print(
        f"webcam {webcam['default_detector']['fps']} FPS (BlazeFace {webcam['blazeface']['fps']}); soak "
        f"{soak[0]['rss_mb']} -> {soak[-1]['rss_mb']} MB; kernels {results['visitors']['rss_mb']} MB -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

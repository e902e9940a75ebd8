"""`make verify`: re-run the committed study in a fresh clone and compare its
numbers with the committed ones, so that a reviewer checks a paper's figures
with one command.

    python tools/verify.py [--tolerance 0] [--only PATTERN ...] [--keep]

It clones the committed state (HEAD; uncommitted changes are not part of it,
and it says so), runs `dvc repro` there with this checkout's environment but
the clone's code, prints `dvc metrics diff` against the committed metrics, and
exits 1 when a number moved by more than --tolerance (docs, The study:
"Reproducing the numbers", says what to expect on this machine and on others).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def out_of_tolerance(diff: dict, tolerance: float, only: list[str] | None = None) -> list[str]:
    """Lines for each metric of a `dvc metrics diff --json` answer that moved by
    more than ``tolerance`` or that is missing on one side; with ``only``
    (fnmatch patterns such as ``test_f1_*`` or ``test.f1_*``), for the metrics
    named there alone. DVC names a nested metric ``test.f1_macro``; a pattern
    may also use the flat name MLflow shows (``test_f1_macro``)."""
    from fnmatch import fnmatch

    lines = []
    for path, metrics in sorted(diff.items()):
        for name, change in sorted(metrics.items()):
            names = (name, name.replace(".", "_", 1))
            if only and not any(fnmatch(n, pattern) for pattern in only for n in names):
                continue
            old, new = change.get("old"), change.get("new")
            if old is None or new is None:
                lines.append(f"{path}: {name}: {old} -> {new} (present on one side only)")
            elif isinstance(old, (int, float)) and isinstance(new, (int, float)):
                if abs(new - old) > tolerance:
                    lines.append(f"{path}: {name}: {old} -> {new} (moved {new - old:+.6g})")
            elif old != new:
                lines.append(f"{path}: {name}: {old!r} -> {new!r}")
    return lines


def _run(command: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=env, text=True, capture_output=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python tools/verify.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--tolerance", type=float, default=0.0, help="largest change allowed in any metric (default 0: identical)"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="PATTERN",
        help="judge only the metrics matching these patterns (e.g. 'test_f1_*'); the diff still shows every one",
    )
    parser.add_argument("--keep", action="store_true", help="keep the clone (its path is printed)")
    args = parser.parse_args(argv)
    if args.tolerance < 0:
        print(f"verify: --tolerance {args.tolerance}: expected 0 or more", file=sys.stderr)
        return 2
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    status = _run(["git", "status", "--porcelain", "--untracked-files=no"], ROOT, env)
    if status.returncode != 0:
        print(f"verify: {ROOT} is not a git checkout; clone the project first", file=sys.stderr)
        return 2
    if status.stdout.strip():
        print("verify: uncommitted changes are not verified (only the committed state is cloned)", file=sys.stderr)
    clone = Path(tempfile.mkdtemp(prefix="maskdet-verify-"))
    try:
        if _run(["git", "clone", "-q", str(ROOT), str(clone)], ROOT, env).returncode != 0:
            print(f"verify: git clone of {ROOT} failed", file=sys.stderr)
            return 2
        # The clone's code, not the code this environment has installed (an editable
        # install points at this checkout); the clone's own MLflow store and cache.
        env.update(PYTHONPATH=str(clone), MASKDET_ROOT=str(clone))
        env.pop("MLFLOW_TRACKING_URI", None)
        print(f"verify: dvc repro in {clone} ...", file=sys.stderr)
        repro = subprocess.run(["dvc", "repro"], cwd=clone, env=env)
        if repro.returncode != 0:
            print("verify: dvc repro failed in the clone (its output is above)", file=sys.stderr)
            return 2
        shown = _run(["dvc", "metrics", "diff", "HEAD", "--all"], clone, env)
        print(shown.stdout)
        answer = _run(["dvc", "metrics", "diff", "HEAD", "--all", "--json"], clone, env)
        moved = out_of_tolerance(json.loads(answer.stdout or "{}"), args.tolerance, args.only)
        if moved:
            print(f"verify: {len(moved)} number(s) outside the tolerance {args.tolerance:g}:", file=sys.stderr)
            print("\n".join(moved), file=sys.stderr)
            return 1
        print(f"verify: every committed metric reproduced within {args.tolerance:g}", file=sys.stderr)
        return 0
    finally:
        if args.keep:
            print(f"verify: the clone is kept at {clone}", file=sys.stderr)
        else:
            shutil.rmtree(clone, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

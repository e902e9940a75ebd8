"""Batch scoring through Spark against the CLI, on this machine's cores.

    python -m benchmarks.spark            (or `make bench-spark`)

A folder of ``--images`` photos (the bundled group photos and portraits,
copied round-robin: real faces, 1 to 3 a photo) is scored twice by each of
`maskdet spark-predict --master local[N]` and `maskdet predict --format csv`,
as a user runs them: once on one photo (what it costs to start: the JVM,
Spark, the model's load), once on the whole folder. Throughput after start-up
is (images - 1) / (whole - one). Every face of the Spark run must match the
CLI's (box and label), or the run is reported as failed. Results go to
benchmarks/spark.json and, with --readme, into docs/team.md.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARK_START, MARK_END = "<!-- bench-spark:start -->", "<!-- bench-spark:end -->"
BIN = Path(sys.executable).parent


def _photos(folder: Path, count: int) -> Path:
    from maskdet.io import assets

    sources = [assets.extract(a) for a in (*assets.FACE_API_PHOTOS, *assets.PORTRAIT_PHOTOS)]
    folder.mkdir(parents=True)
    for i in range(count):
        shutil.copy(sources[i % len(sources)], folder / f"{i:05d}.jpg")
    return folder


def _timed(command: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode not in (0, 1):  # 1: the CLI's "some input failed", none does here
        raise SystemExit(f"{' '.join(command[:2])} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started, done


def _faces_of_csv(text: str) -> set:
    return {
        (Path(r["image"]).name, r["x1"], r["y1"], r["x2"], r["y2"], r["label"])
        for r in csv.DictReader(io.StringIO(text))
        if r["label"]
    }


def _faces_of_parquet(path: Path) -> set:
    import pandas as pd

    rows = pd.read_parquet(path).dropna(subset=["label"])
    return {
        (Path(r.image).name, *(str(int(getattr(r, k))) for k in ("x1", "y1", "x2", "y2")), r.label)
        for r in rows.itertuples()
    }


def measure(model: str, images: int, master: str, env: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        one, many = _photos(Path(tmp) / "one", 1), _photos(Path(tmp) / "many", images)
        spark = [str(BIN / "maskdet"), "spark-predict", "--model", model, "--master", master]
        cli = [str(BIN / "maskdet"), "predict", "--model", model, "--format", "csv", "-q"]
        print(f"bench-spark: {images} images, Spark {master} and the CLI ...", file=sys.stderr)
        spark_one, _ = _timed([*spark, str(one), str(Path(tmp) / "one.parquet")], env)
        spark_all, _ = _timed([*spark, str(many), str(Path(tmp) / "many.parquet")], env)
        cli_one, _ = _timed([*cli, str(one)], env)
        cli_all, done = _timed([*cli, str(many)], env)
        same = _faces_of_parquet(Path(tmp) / "many.parquet") == _faces_of_csv(done.stdout)
    rate = {k: (images - 1) / max(whole - first, 1e-9) for k, (first, whole) in
            {"spark": (spark_one, spark_all), "cli": (cli_one, cli_all)}.items()}  # fmt: skip
    return {
        "images": images,
        "master": master,
        "spark_start_s": round(spark_one, 1),
        "spark_total_s": round(spark_all, 1),
        "cli_start_s": round(cli_one, 1),
        "cli_total_s": round(cli_all, 1),
        "spark_images_per_s": round(rate["spark"], 2),
        "cli_images_per_s": round(rate["cli"], 2),
        "ratio": round(rate["spark"] / rate["cli"], 2),
        "same_faces": same,
    }


def break_even(r: dict) -> str:
    """Where Spark's longer start-up is earned back by its faster scoring, in words."""
    saved = 1 / r["cli_images_per_s"] - 1 / r["spark_images_per_s"]  # seconds a photo, after start-up
    if saved <= 0:
        return "it does not pay off on this machine"
    photos = (r["spark_start_s"] - r["cli_start_s"]) / saved
    return f"it pays off past about {float(f'{photos:.2g}'):,.0f} photos on this machine"


def table(r: dict) -> str:
    return "\n".join(
        [
            "| run | one photo (start-up) | all photos | photos/s after start-up |",
            "|---|---:|---:|---:|",
            f"| `maskdet spark-predict --master {r['master']}` | {r['spark_start_s']} s | {r['spark_total_s']} s "
            f"| {r['spark_images_per_s']} |",
            f"| `maskdet predict` (CLI) | {r['cli_start_s']} s | {r['cli_total_s']} s | {r['cli_images_per_s']} |",
            "",
            f"{r['images']} photos; Spark's throughput is {r['ratio']}x the CLI's after start-up, so "
            f"{break_even(r)}; same faces and labels: {'yes' if r['same_faces'] else 'NO'}. {r['note']}",
        ]
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.spark", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="models:/maskdet@champion", help="model URI (default: the champion)")
    parser.add_argument("--images", type=int, default=400, help="photos in the folder (default 400)")
    parser.add_argument("--master", default=f"local[{os.cpu_count()}]", help="Spark master (default local[cores])")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "spark.json"), help="results JSON")
    parser.add_argument(
        "--readme",
        action="store_true",
        help="also write the table into the documentation (the page holding its markers)",
    )
    args = parser.parse_args(argv)
    from maskdet.paths import tracking_uri

    env = {**os.environ, "MLFLOW_TRACKING_URI": os.environ.get("MLFLOW_TRACKING_URI") or tracking_uri()}
    result = measure(args.model, args.images, args.master, env)
    result["note"] = f"Measured {time.strftime('%Y-%m-%d')} with `make bench-spark` on {os.cpu_count()} cores."
    from benchmarks.bench import publish

    publish(result, args.out, table(result), args.readme, (MARK_START, MARK_END))
    return 0 if result["same_faces"] else 1


if __name__ == "__main__":
    sys.exit(main())

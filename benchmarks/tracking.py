"""Tracking on a rendered walk-through clip with known identities and labels
(``maskdet.data.clips``: people of the built-in data cross a 640x480 frame,
half of them putting a mask on or taking it off on the way), in one run:

- the frame loop without a tracker (every frame detected and classified, as
  before tracking: its labels are the per-frame ones);
- with the tracker, the detector on every k-th frame, k = 1, 2, 3, 5, each
  face classified at every detection;
- with the detector on every 2nd frame, a followed face classified again only
  when its last answer is 4 or 6 frames old (a new face at once).

For each: recall (truth faces with a shown box whose centre lies in them),
ID switches (a person's box changing id), label changes per minute shown
against the truth's (the extra ones are flicker), the share of shown labels
that are right, people counted per class against the truth, and ms per frame
(p50 and mean: decoding the frame's JPEG, then the whole ``process_frame``), with the mean's ratio to the
classic res10 + MobileNetV2 pipeline run carefully (a compiled call; decode,
detect, classify and draw; ``benchmarks.classic``) on the same frames, in the
same run, and the floor of one frame (decode, one detector pass, one
classifier call).

    python -m benchmarks.tracking            (or part of `make bench`)

Results go to benchmarks/tracking.json and, with --readme, into docs/predicting.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import pandas as pd

from benchmarks.bench import _cpu, decode_jpeg, publish
from maskdet import LABELS

ROOT = Path(__file__).resolve().parents[1]
MARKERS = ("<!-- tracking:start -->", "<!-- tracking:end -->")
EVERY = (1, 2, 3, 5)
CLASSIFY_EVERY = (4, 6)  # the detector on every 2nd frame, a followed face classified at every 2nd or 3rd detection


def _nth(k: int) -> str:
    return {2: "2nd", 3: "3rd"}.get(k, f"{k}th")


def shown_per_truth(clip, shown: list[tuple[list, list[int]]]) -> pd.DataFrame:
    """Each truth face with the box shown on it (centre inside the truth box):
    its id (-1 without a tracker) and label; None where nothing was shown."""
    rows = []
    for truth in clip.truth.itertuples():
        faces, ids = shown[truth.frame - 1]
        match = None
        for i, face in enumerate(faces):
            cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
            if truth.x1 <= cx <= truth.x2 and truth.y1 <= cy <= truth.y2:
                match = (ids[i] if ids else -1, face.label)
                break
        rows.append((truth.frame, truth.person, truth.label, *(match or (None, None))))
    return pd.DataFrame(rows, columns=["frame", "person", "truth", "id", "label"])


def _changes(series: pd.Series) -> int:
    values = series.dropna().to_numpy()
    return int((values[1:] != values[:-1]).sum())


def score(clip, shown, counts: dict | None) -> dict:
    """The figures of one run over the clip (``shown``: per frame, the faces and their ids)."""
    table = shown_per_truth(clip, shown)
    matched = table.dropna(subset=["label"])
    minutes = len(clip.frames) / clip.fps / 60
    by_person = table.groupby("person")
    result = {
        "recall": round(len(matched) / len(table), 3),
        "label_right": round(float((matched["label"] == matched["truth"]).mean()), 3),
        "label_changes_per_min": round(sum(_changes(g["label"]) for _, g in by_person) / minutes, 1),
        "truth_changes_per_min": round(sum(_changes(g["truth"]) for _, g in by_person) / minutes, 1),
    }
    if counts is not None:
        result["id_switches"] = sum(_changes(g["id"]) for _, g in by_person)
        result["people"] = counts
    return result


def _jpegs(clip) -> list[bytes]:
    """The clip's frames as a camera or a video file hands them over: compressed."""
    from maskdet.io.images import encode_jpeg

    return [encode_jpeg(rgb, 90) for rgb in clip.frames]


def _timed(step, blobs: list[bytes]) -> tuple[list, dict]:
    """``step(rgb)`` on each decoded frame, the decode included in its time."""
    answers, ms = [], []
    for blob in blobs:
        started = time.perf_counter()
        answers.append(step(decode_jpeg(blob)))
        ms.append((time.perf_counter() - started) * 1000)
    return answers, {"ms_p50": round(statistics.median(ms), 1), "ms_mean": round(statistics.mean(ms), 1)}


def run(predictor, clip, blobs: list[bytes], every: int | None, classify_every: int = 1) -> dict:
    """The clip through ``process_frame``: without a tracker (``every`` None) or with one."""
    from maskdet.predict.frames import process_frame
    from maskdet.predict.tracker import FaceTracker

    tracker = FaceTracker(detect_every=every, classify_every=classify_every, fps=clip.fps) if every else None
    frames, times = _timed(lambda rgb: process_frame(predictor, rgb, tracker), blobs)
    result = score(clip, [(f.faces, f.ids) for f in frames], tracker.counts() if tracker else None)
    return result | times


def run_classic(blobs: list[bytes]) -> dict:
    """The careful classic pipeline on the same frames: decode, detect, classify, draw."""
    from benchmarks.classic import ClassicPipeline

    pipeline = ClassicPipeline(compiled=True)
    _timed(pipeline, blobs[:3])  # warm-up: the first calls trace the graph
    return _timed(lambda rgb: pipeline.annotate(rgb, *pipeline(rgb)), blobs)[1]


def run_floor(predictor, clip, blobs: list[bytes]) -> dict:
    """The physical floor of a frame on this machine: decode it, one pass of
    the detector at the frame input, one classifier call on one face."""
    face = clip.frames[0][:96, :96]
    return _timed(lambda rgb: (predictor.detector(rgb), predictor.classify([face])), blobs)[1]


def table(results: dict) -> str:
    truth = results["truth"]
    people = ", ".join(f"{n} {label}" for label, n in truth["people"].items() if n)
    lines = [
        "| frame loop | recall | ID switches | label changes / min (truth) | labels right | people counted "
        "| ms per frame, p50 / mean | mean against the careful classic |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    classic = results["classic"]["ms_mean"]
    for name, r in results["runs"].items():
        counted = ", ".join(f"{r['people'][label]} {label}" for label in LABELS) if "people" in r else "no count"
        changes = f"{r['label_changes_per_min']:.1f} ({r['truth_changes_per_min']:.1f})"
        ms = f"{r['ms_p50']:.1f} / {r['ms_mean']:.1f}"
        lines.append(
            f"| {name} | {r['recall']:.3f} | {r.get('id_switches', '-')} | {changes} | {r['label_right']:.3f} "
            f"| {counted} | {ms} | {r['ms_mean'] / classic:.2f}x |"
        )
    lines += [
        "",
        f"A rendered clip of {truth['frames']} frames at {truth['fps']:.0f} FPS, {truth['persons']} people "
        f"({people}; {truth['changes']} change their mask on the way); the default model; the careful classic "
        f"pipeline {results['classic']['ms_p50']:.1f} / {classic:.1f} ms per frame (p50 / mean); the floor (decode a "
        f"JPEG, one detector pass, one classifier call) {results['floor']['ms_p50']:.1f} ms, "
        f"{results['floor']['ms_p50'] / classic:.2f}x; {results['cpu']}. "
        "Measured with `make bench` (`python -m benchmarks.tracking`).",
    ]
    return "\n".join(lines)


def measure(model: Path, sample: Path, people: int = 8, walk_frames: int = 75, seed: int = 0) -> dict:
    from maskdet.data.clips import render_clip
    from maskdet.predict.predictor import Predictor

    clip = render_clip(pd.read_csv(sample / "crops.csv"), sample, people=people, walk_frames=walk_frames, seed=seed)
    predictor = Predictor(model)
    changes = int(clip.truth.groupby("person")["label"].nunique().gt(1).sum())
    results = {
        "cpu": _cpu(),
        "truth": {
            "frames": len(clip.frames),
            "fps": clip.fps,
            "persons": int(clip.truth["person"].nunique()),
            "people": clip.people(),
            "changes": changes,
        },
        "runs": {},
    }
    blobs = _jpegs(clip)
    run(predictor, clip, blobs, 1)  # warm-up: the first frames load the runtimes
    results["runs"]["every frame, no tracker"] = run(predictor, clip, blobs, None)
    for k in EVERY:
        name = "tracked, detector on every frame" if k == 1 else f"tracked, detector on every {_nth(k)} frame"
        results["runs"][name] = run(predictor, clip, blobs, k)
    for c in CLASSIFY_EVERY:
        name = f"tracked, detector on every 2nd frame, a face classified every {_nth(c)} frame"
        results["runs"][name] = run(predictor, clip, blobs, 2, classify_every=c)
    results["floor"] = run_floor(predictor, clip, blobs)
    results["classic"] = run_classic(blobs)  # last: it loads TensorFlow, which the Predictor's runtime does not
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.tracking", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=str(ROOT / "models"), help="maskdet model folder (default: models/)")
    parser.add_argument(
        "--sample", default=str(ROOT / "data" / "raw" / "sample"), help="the built-in data (crops.csv and crops/)"
    )
    parser.add_argument("--people", type=int, default=8, help="walkers in the clip")
    parser.add_argument("--walk-frames", type=int, default=75, help="frames each walker takes to cross (3 s at 25 FPS)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "tracking.json"), help="results JSON")
    parser.add_argument(
        "--readme",
        action="store_true",
        help="also write the table into the documentation (the page holding its markers)",
    )
    args = parser.parse_args(argv)
    for need, what in (
        (Path(args.model) / "metadata.json", "a trained model"),
        (Path(args.sample) / "crops.csv", "the built-in data"),
    ):
        if not need.is_file():
            print(f"{need}: missing ({what}); run `make repro` first", file=sys.stderr)
            return 2
    results = measure(Path(args.model), Path(args.sample), args.people, args.walk_frames)
    publish(results, args.out, table(results), args.readme, MARKERS)
    return 0


if __name__ == "__main__":
    sys.exit(main())

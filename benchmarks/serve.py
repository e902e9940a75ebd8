"""The REST server under load: requests/s, latency p50/p95 and memory per
worker of `maskdet serve` at several client counts and worker counts.

    python -m benchmarks.serve            (or `make bench-serve`)

Each configuration starts a fresh server on a loopback port, waits for
``/ping``, warms it with one request, then ``--requests`` requests (one
640x480 frame of the bundled group photo, three faces, each) are sent by N
client threads at once. Every answer is checked against the lone client's:
the same boxes and labels, or the run is reported as failed. Peak RSS is each
worker process's high-water mark (VmHWM) at the end. Then the cost of the
metrics: a server with them and one with ``--no-metrics``, asked in turn.
Results go to benchmarks/serve.json and, with --readme, into docs/predicting.md.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from maskdet.predict.rest import wait_until_ready

ROOT = Path(__file__).resolve().parents[1]
MARK_START, MARK_END = "<!-- bench-serve:start -->", "<!-- bench-serve:end -->"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request_body() -> bytes:
    """One request: the bundled group photo (three faces) as a 640x480 JPEG."""
    from maskdet.io import assets
    from maskdet.io.images import encode_jpeg, letterbox, load_rgb

    frame = letterbox(load_rgb(assets.extract(assets.FACE_API_PHOTOS[0])), 640, 480)[0]
    record = {"image": base64.b64encode(encode_jpeg(frame)).decode(), "name": "frame.jpg"}
    return json.dumps({"dataframe_records": [record]}).encode()


def _rss_mb(pid: int, field: str = "VmHWM") -> list[float]:
    """``field`` of the server's worker processes (the server itself when it has none):
    VmHWM, the peak; VmRSS, what they hold now. With --workers N, uvicorn's main
    process only supervises; it is not counted."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    sizes = []
    for p in [int(c) for c in children] or [pid]:
        try:
            if b"resource_tracker" in Path(f"/proc/{p}/cmdline").read_bytes():
                continue  # multiprocessing's helper beside the workers, not a worker
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith(f"{field}:"):
                    sizes.append(int(line.split()[1]) / 1024)
        except OSError:
            pass
    return sizes


def _faces(answer: dict) -> list:
    return [(f["box"], f["label"]) for f in answer["predictions"][0]["faces"]]


@contextlib.contextmanager
def _server(model: str, workers: int, env: dict, *options: str):
    """A `maskdet serve` on a free loopback port, ready: its base URL and process."""
    port = _free_port()
    command = [sys.executable, "-m", "maskdet", "serve", "--model", model, "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--workers", str(workers), *options],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            startup = wait_until_ready(base, server, 300)
        except RuntimeError as exc:
            raise RuntimeError(f"maskdet serve: {exc}: {server.stderr.read().decode()[-2000:]}") from None
        yield base, server, startup
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def _poster(base: str, body: bytes):
    import requests

    return lambda: requests.post(
        f"{base}/invocations", data=body, headers={"content-type": "application/json"}, timeout=120
    )


def run_config(model: str, workers: int, clients: list[int], requests_per_run: int, body: bytes, env: dict) -> dict:
    with _server(model, workers, env) as (base, server, startup):
        post = _poster(base, body)
        expected = _faces(post().json())
        for _ in range(2 * workers):  # every worker loads and warms its Predictor
            post()
        rows = []
        for n in clients:

            def one(_):
                t = time.perf_counter()
                answer = post()
                ok = answer.status_code == 200 and _faces(answer.json()) == expected
                return time.perf_counter() - t, ok, answer.status_code

            t0 = time.perf_counter()
            with ThreadPoolExecutor(n) as pool:
                done = list(pool.map(one, range(requests_per_run)))
            wall = time.perf_counter() - t0
            latencies = sorted(d[0] * 1000 for d in done)
            rows.append(
                {
                    "clients": n,
                    "requests": len(done),
                    "correct": sum(d[1] for d in done),
                    "statuses": sorted({d[2] for d in done}),
                    "requests_per_s": len(done) / wall,
                    "p50_ms": statistics.median(latencies),
                    "p95_ms": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))],
                }
            )
        time.sleep(2)  # the last answers are out; a worker idle for a second hands freed memory back
        return {
            "workers": workers,
            "startup_s": startup,
            "rows": rows,
            "peak_rss_mb": _rss_mb(server.pid),
            "idle_rss_mb": _rss_mb(server.pid, "VmRSS"),
        }


def metrics_cost(model: str, requests_per_run: int, body: bytes, env: dict) -> dict:
    """What /metrics and the counting cost a request: two one-worker servers, one
    with ``--no-metrics``, asked in turn by one client (interleaved, so that the
    machine's noise falls on both alike); then the time of one scrape."""
    import requests

    with _server(model, 1, env) as (with_base, *_), _server(model, 1, env, "--no-metrics") as (without_base, *_):
        posts = {"with": _poster(with_base, body), "without": _poster(without_base, body)}
        for post in posts.values():
            for _ in range(2):
                post()
        times: dict[str, list[float]] = {"with": [], "without": []}
        for i in range(2 * requests_per_run):
            order = ("with", "without") if (i // 2) % 2 == 0 else ("without", "with")  # ABBA: no side goes first
            name = order[i % 2]
            t = time.perf_counter()
            assert posts[name]().status_code == 200
            times[name].append((time.perf_counter() - t) * 1000)
        scrapes = []
        for _ in range(10):
            t = time.perf_counter()
            assert requests.get(f"{with_base}/metrics", timeout=30).status_code == 200
            scrapes.append((time.perf_counter() - t) * 1000)
    p50 = {k: statistics.median(v) for k, v in times.items()}
    return {
        "requests": requests_per_run,
        "p50_ms_with": p50["with"],
        "p50_ms_without": p50["without"],
        "cost_pct": 100 * (p50["with"] - p50["without"]) / p50["without"],
        "scrape_ms_p50": statistics.median(scrapes),
    }


def table(results: dict) -> str:
    lines = [
        "| workers | clients | requests/s | p50 latency (ms) | p95 latency (ms) | correct answers |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for config in results["configs"]:
        for r in config["rows"]:
            lines.append(
                f"| {config['workers']} | {r['clients']} | {r['requests_per_s']:.1f} | {r['p50_ms']:.0f} | "
                f"{r['p95_ms']:.0f} | {r['correct']} / {r['requests']} |"
            )
    memory = "; ".join(
        f"{c['workers']} worker(s): peak RSS {', '.join(f'{m:.0f}' for m in c['peak_rss_mb'])} MB, "
        f"{', '.join(f'{m:.0f}' for m in c['idle_rss_mb'])} MB once idle, ready in {c['startup_s']:.0f} s"
        for c in results["configs"]
    )
    lines += ["", f"{memory}. {results['note']}"]
    cost = results.get("metrics_cost")
    if cost:
        lines += [
            "",
            f"Metrics (`/metrics`, the counters and the class-share window) cost {cost['cost_pct']:+.1f} % of the "
            f"p50 latency of one client: {cost['p50_ms_with']:.1f} ms with them, {cost['p50_ms_without']:.1f} ms "
            f"with `--no-metrics`, {cost['requests']} requests each, interleaved; one scrape of /metrics takes "
            f"{cost['scrape_ms_p50']:.1f} ms (p50).",
        ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="models:/maskdet@champion", help="model URI (default: the champion)")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts (default 1,2)")
    parser.add_argument("--clients", default="1,4,8", help="comma-separated client counts (default 1,4,8)")
    parser.add_argument("--requests", type=int, default=48, help="requests per client count (default 48)")
    parser.add_argument("--no-metrics-cost", action="store_true", help="skip the servers with and without metrics")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "serve.json"), help="results JSON")
    parser.add_argument(
        "--readme",
        action="store_true",
        help="also write the table into the documentation (the page holding its markers)",
    )
    args = parser.parse_args(argv)
    from maskdet.paths import tracking_uri

    env = {**os.environ, "MLFLOW_TRACKING_URI": os.environ.get("MLFLOW_TRACKING_URI") or tracking_uri()}
    body = _request_body()
    configs = []
    for workers in (int(w) for w in args.workers.split(",")):
        print(f"bench-serve: {workers} worker(s) ...", file=sys.stderr)
        configs.append(
            run_config(args.model, workers, [int(c) for c in args.clients.split(",")], args.requests, body, env)
        )
    cost = None
    if not args.no_metrics_cost:
        print("bench-serve: the cost of the metrics ...", file=sys.stderr)
        cost = metrics_cost(args.model, args.requests, body, env)
    cpu = os.cpu_count()
    results = {
        "configs": configs,
        "metrics_cost": cost,
        "note": f"One 640x480 frame with 3 faces per request, {args.requests} requests per row; client threads on "
        f"the same {cpu}-core machine as the server; measured {time.strftime('%Y-%m-%d')} with `make bench-serve`.",
    }
    from benchmarks.bench import publish

    publish(results, args.out, table(results), args.readme, (MARK_START, MARK_END))
    failed = [r for c in configs for r in c["rows"] if r["correct"] != r["requests"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

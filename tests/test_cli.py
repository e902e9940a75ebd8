"""How the CLI reports failures: the project's own errors as one line, any
other exception with its traceback (a bug must not pass for bad input)."""

import time

import pytest

from maskdet import cli
from maskdet.errors import InputError, MaskdetError, MissingFileError
from maskdet.io.images import ImageError
from maskdet.params import ParamsError
from tests.helpers import run_maskdet


def test_a_missing_model_is_one_line_naming_it_with_status_2(tmp_path, capsys):
    image = tmp_path / "a.jpg"
    image.write_bytes(b"not used")
    status = cli.main(["predict", str(image), "--model", str(tmp_path / "no-model")])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and "no-model" in err and err.startswith("maskdet predict: error:")


def test_an_internal_fault_keeps_its_traceback(monkeypatch):
    def broken(args):
        raise ValueError("an internal NumPy-style fault")

    monkeypatch.setattr(cli, "_cmd_params", broken)
    with pytest.raises(ValueError, match="internal"):
        cli.main(["params"])


def test_project_errors_share_one_base_and_keep_the_builtin_types():
    for error in (InputError, MissingFileError, ImageError, ParamsError):
        assert issubclass(error, MaskdetError)
    assert issubclass(InputError, ValueError) and issubclass(MissingFileError, FileNotFoundError)


def test_serve_refuses_bad_limits_and_a_missing_model_in_one_line(tmp_path):
    # as a user runs it, in a process of its own: MLflow's registry and the
    # server's imports stay out of the test worker (which a test of the
    # tracking server has used before)
    store = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    done = run_maskdet("serve", "--max-in-flight", "0", **store)
    assert done.returncode == 2 and "--max-in-flight 0: expected a whole number of at least 1" in done.stderr
    done = run_maskdet("serve", "--model", "models:/maskdet@champion", **store)
    said = done.stderr.strip()
    assert done.returncode == 2, said
    assert said.startswith("maskdet serve: error: --model models:/maskdet@champion: no model there")
    assert "make repro" in said and len(said.splitlines()) == 1


def test_ctrl_c_in_predict_says_interrupted_without_a_traceback(tiny, tmp_path):
    """Ctrl-C (SIGINT) while `maskdet predict` works through a folder: one line, status
    130, and only whole annotated files in --out (each is written to a temporary name first)."""
    import signal
    import subprocess
    import time

    from maskdet.io import assets
    from tests.helpers import BIN, ROOT

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(200):  # far more than it gets through before the signal, however loaded the machine
        (photos / f"p{i:03d}.jpg").symlink_to(assets.extract(assets.FACE_API_PHOTOS[0]))
    out = tmp_path / "out"
    run = subprocess.Popen(
        [str(BIN / "maskdet"), "predict", str(photos), "--model", str(tiny[1]), "--out", str(out), "--format", "jsonl",
         "-q"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        # as a shell starts it: a child inherits an ignored SIGINT, and under `make test` some
        # library in this worker had left it ignored (predict then ran on through the signal)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.time() + 180
    while not (out.is_dir() and any(out.glob("*.jpg"))):
        assert run.poll() is None and time.time() < deadline, run.stderr.read()[-2000:]
        time.sleep(0.2)
    run.send_signal(signal.SIGINT)
    err = run.communicate(timeout=60)[1]
    assert run.returncode == 130 and "Traceback" not in err, err[-2000:]
    assert err.strip().endswith("maskdet predict: interrupted")
    written = sorted(out.iterdir())
    assert 0 < len(written) < 200 and all(p.suffix == ".jpg" and p.stat().st_size > 1000 for p in written)


def test_the_tracking_server_finds_runuser_and_waits_through_a_slow_start(tmp_path, monkeypatch):
    """runuser lives in the system's sbin folders, which a user's PATH may lack; a
    server too busy to answer the readiness poll within its 2 s is waited for, not a crash."""
    import shutil
    import subprocess
    import sys

    from maskdet.predict.rest import wait_until_ready
    from maskdet.scale import tracking_server

    if shutil.which("runuser", path="/usr/sbin:/sbin:/usr/bin:/bin"):
        monkeypatch.setenv("PATH", "/usr/bin:/bin")
        assert tracking_server._runuser().endswith("/runuser")
    from tests.helpers import free_port

    port = free_port()
    # accepts connections and never answers, then exits: a ReadTimeout at every poll
    silent = subprocess.Popen(
        [sys.executable, "-c", f"import socket, time; s = socket.create_server(('127.0.0.1', {port})); "
         "c = [s.accept() for _ in range(3)]; time.sleep(1)"],
    )  # fmt: skip
    try:
        time.sleep(0.5)
        with pytest.raises(RuntimeError, match="exited"):
            wait_until_ready(f"http://127.0.0.1:{port}", silent, 60, path="/health")
    finally:
        silent.kill()
        silent.wait()


def test_monitor_names_a_server_it_cannot_read_in_one_line(capsys):
    from tests.helpers import free_port

    url = f"http://127.0.0.1:{free_port()}"
    assert cli.main(["monitor", url, "--timeout", "2"]) == 2
    said = capsys.readouterr().err.strip()
    assert said.startswith(f"maskdet monitor: error: {url}/metrics: cannot read the metrics")
    assert "maskdet serve" in said and len(said.splitlines()) == 1

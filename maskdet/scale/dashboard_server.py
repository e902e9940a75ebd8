"""`maskdet dashboard` / `make dashboard`: the Voila server for
notebooks/dashboard.ipynb, with the two guards Voila leaves to its operator.

- **Who gets in.** Beyond loopback, the server starts only with a token
  (``MASKDET_DASHBOARD_TOKEN`` or ``--token-file``): Jupyter server's own token
  check, so a visitor opens ``http://host:8866/?token=...`` once and keeps a
  login cookie. Without one it refuses to start, naming both ways to give one.
- **How many at once.** Every page load starts a kernel (about 450 MB with the
  model), which lives until it is culled (voila.json: 10 minutes without a page).
  Past ``--max-kernels`` live kernels a visitor gets a "dashboard is full" page
  (HTTP 503) instead of a kernel: Voila's prelaunch hook runs before any kernel
  starts and before any byte of the page is sent.

Voila runs in this process, so the hook (a Python callable, which voila.json
cannot hold) and the token (which a command line would show to ``ps``) are
handed over as configuration.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from maskdet.errors import InputError
from maskdet.io.secret_files import read_secret_file

TOKEN_ENV = "MASKDET_DASHBOARD_TOKEN"
DEFAULT_MAX_KERNELS = 8  # about 3.6 GB of kernels
MIN_TOKEN = 16
# the page shows the reason (Voila's error page leaves the longer message to the log)
FULL_REASON = "The dashboard is full: every place is taken. Try again in a few minutes"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def dashboard_token(host: str, token_file: str | os.PathLike | None) -> str | None:
    """The token visitors must bring: from ``token_file``, else ``MASKDET_DASHBOARD_TOKEN``;
    None on loopback without either; an InputError beyond loopback without either."""
    token = None
    if token_file is not None:
        token = read_secret_file(token_file, "--token-file", MIN_TOKEN)
    elif os.environ.get(TOKEN_ENV):
        token = os.environ[TOKEN_ENV].strip()
        if len(token) < MIN_TOKEN:
            raise InputError(
                f"{TOKEN_ENV} holds {len(token)} characters; give at least {MIN_TOKEN} "
                '(for example: python -c "import secrets; print(secrets.token_urlsafe(24))")'
            )
    if token is None and not is_loopback(host):
        raise InputError(
            f"refusing to serve the dashboard on {host} without a token: anyone who reaches the port would "
            f"start kernels on this machine. Set {TOKEN_ENV} or give --token-file (mode 0600), then share "
            "http://HOST:PORT/?token=... with your team"
        )
    return token


def kernel_cap(max_kernels: int):
    """Voila's prelaunch hook: a 503 page instead of a new kernel past ``max_kernels`` live ones."""
    from tornado.web import HTTPError

    def refuse_when_full(handler, notebook, cwd):
        live = len(handler.kernel_manager.list_kernel_ids())
        if live >= max_kernels:
            raise HTTPError(
                503,
                f"{live} visitors have the dashboard open, its limit on this server. Try again in a few "
                "minutes: a page closed or left idle frees its place.",
                reason=FULL_REASON,
            )
        return None  # the notebook as it is

    return refuse_when_full


def serve(notebook: Path, host: str, port: int, token: str | None, max_kernels: int, voila_args=()) -> None:
    """Voila on ``notebook`` until Ctrl-C; voila.json in the working folder applies as usual."""
    from traitlets.config import Config
    from voila.app import Voila

    if max_kernels < 1:
        raise InputError(f"--max-kernels {max_kernels}: expected at least 1")
    config = Config()
    config.VoilaConfiguration.prelaunch_hook = kernel_cap(max_kernels)
    if token:
        config.Voila.token = token
    argv = [str(notebook), "--no-browser", f"--Voila.ip={host}", f"--port={port}", *voila_args]
    Voila.launch_instance(argv=argv, config=config)

"""A team tracking server: ``mlflow server`` on PostgreSQL, artifacts proxied.

One server holds the runs, metrics, artifacts and the model registry of a
whole group; clients reach it through ``MLFLOW_TRACKING_URI=http://host:port``
alone (``--serve-artifacts``: they never touch the database or the artifact
folder). ``make tracking-server`` starts one on a machine without Docker
(``compose.yaml`` is the same with containers), and the tests start the very
same one on a throw-away PostgreSQL.

PostgreSQL comes from the system package manager (Debian's ``postgresql``;
``tools/ensure-system`` installs it). It refuses to run as root, so under root
its commands run as the ``postgres`` user that the package creates.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from maskdet.errors import MaskdetError
from maskdet.predict.rest import wait_until_ready

DATABASE = "mlflow"
USER = "mlflow"


class NoPostgresError(MaskdetError):
    """PostgreSQL's server programs (initdb, pg_ctl) are not installed."""


def postgres_bin() -> Path:
    """The folder of ``initdb`` and ``pg_ctl``: on PATH, or Debian's
    /usr/lib/postgresql/<version>/bin (the newest), which is not on PATH."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if versions:
        return versions[-1].parent
    raise NoPostgresError(
        "PostgreSQL not found (initdb, pg_ctl): `make tracking-server` installs it with the system "
        "package manager, or run `apt-get install postgresql`"
    )


def _as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL will not run as root; root runs it as the package's ``postgres`` user."""
    if os.geteuid() != 0:
        return command
    runuser = shutil.which("runuser") or "runuser"
    return [runuser, "-u", "postgres", "--", *command]


def _hand_to_postgres_user(folder: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")


@dataclass
class Postgres:
    """A PostgreSQL cluster in ``data`` (created on first start), listening on
    127.0.0.1:``port`` only (no Unix socket: no system folder is needed)."""

    data: Path
    port: int

    @property
    def url(self) -> str:
        """The SQLAlchemy URL MLflow takes (psycopg 3 driver)."""
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *command: str) -> None:
        done = subprocess.run(_as_postgres_user(list(command)), capture_output=True, text=True)
        if done.returncode != 0:
            hint = " (as root, PostgreSQL runs as the postgres user: it must be able to enter every folder above)"
            raise MaskdetError(
                f"{Path(command[0]).name} failed for {self.data}: {done.stderr.strip()[-500:]}"
                + (hint if os.geteuid() == 0 else "")
            )

    def start(self) -> None:
        bin_dir = postgres_bin()
        if not (self.data / "PG_VERSION").is_file():
            self.data.mkdir(parents=True, exist_ok=True)
            _hand_to_postgres_user(self.data)
            # trust on loopback only: the server listens on nothing else
            self._run(str(bin_dir / "initdb"), "-D", str(self.data), "-U", USER, "-A", "trust", "-E", "UTF8")
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
        log = str(self.data / "log")
        self._run(str(bin_dir / "pg_ctl"), "-D", str(self.data), "-o", options, "-w", "-l", log, "start")
        self._create_database()

    def _create_database(self) -> None:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={USER} dbname=postgres", autocommit=True) as db:
            if not db.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
                db.execute(f"CREATE DATABASE {DATABASE}")

    def stop(self) -> None:
        self._run(str(postgres_bin() / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")


def server_command(backend_uri: str, artifacts: Path, host: str, port: int, workers: int) -> list[str]:
    """``mlflow server`` with the registry and runs in ``backend_uri`` and every
    artifact behind the server (``mlflow-artifacts:/``), stored in ``artifacts``."""
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        backend_uri,
        "--serve-artifacts",
        "--artifacts-destination",
        str(artifacts),
        "--host",
        host,
        "--port",
        str(port),
        # each worker imports MLflow (about 10 s of a core): 4, MLflow's default, for a team; 1 in the tests
        "--workers",
        str(workers),
    ]


@contextlib.contextmanager
def tracking_server(
    folder: Path, port: int = 5000, pg_port: int = 5433, host: str = "127.0.0.1", workers: int = 4, log=None
) -> Iterator[str]:
    """PostgreSQL (``folder``/postgres) and ``mlflow server`` (artifacts in
    ``folder``/artifacts) started, the tracking URI yielded; both stopped on exit.
    A second start on the same folder finds the same runs."""
    folder = Path(folder).resolve()
    database = Postgres(folder / "postgres", pg_port)
    database.start()
    try:
        artifacts = folder / "artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        url = f"http://{host}:{port}"
        process = subprocess.Popen(
            server_command(database.url, artifacts, host, port, workers),
            stdout=log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
            start_new_session=True,  # its workers go with it
        )
        try:
            try:
                wait_until_ready(url, process, 120, path="/health")
            except RuntimeError as exc:
                raise MaskdetError(f"mlflow server on {url}: {exc}") from None
            yield url
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 15)
            process.wait(timeout=30)
    finally:
        database.stop()

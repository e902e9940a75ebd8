"""A team tracking server: ``mlflow server`` on PostgreSQL, artifacts proxied,
every request authenticated.

One server holds the runs, metrics, artifacts and the model registry of a
whole group; clients reach it through ``MLFLOW_TRACKING_URI=http://host:port``
and MLflow's own ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``
(``--serve-artifacts``: they never touch the database or the artifact folder).
``make tracking-server`` starts one on a machine without Docker
(``compose.yaml`` is the same with containers), and the tests start the very
same one on a throw-away PostgreSQL.

Who gets in: MLflow's basic-auth app (``--app-name basic-auth``). Every user
reads everything (``default_permission = READ``); a run, an experiment or a
registered model can be changed only by the user who created it (MLflow gives
the creator MANAGE) and by admins, so only the study's writer moves
``champion``. The admin password comes from a file or
``MLFLOW_AUTH_ADMIN_PASSWORD``; with neither, one is generated on the first
start and kept in ``<folder>/secrets`` (0600). There is no default password.

PostgreSQL asks every connection for a password (``scram-sha-256`` on every
line of pg_hba.conf). The superuser ``postgres`` and the ``mlflow`` role each
get a generated password kept 0600 in ``<folder>/secrets``; ``mlflow`` owns
its two databases (runs and registry; users and permissions) and nothing more:
it is not a superuser and cannot create roles or databases. The MLflow server
reads its password from a pgpass file, never from its command line.

PostgreSQL comes from the system package manager (Debian's ``postgresql``;
``tools/ensure-system`` installs it). It refuses to run as root, so under root
its commands run as the ``postgres`` user that the package creates.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from maskdet.errors import InputError, MaskdetError
from maskdet.io.secret_files import read_secret_file, write_secret_file
from maskdet.predict.rest import wait_until_ready

DATABASE = "mlflow"  # runs, metrics, the model registry
AUTH_DATABASE = "mlflow_auth"  # the basic-auth app's users and permissions
USER = "mlflow"
SUPERUSER = "postgres"
ADMIN = "admin"
ADMIN_PASSWORD_ENV = "MLFLOW_AUTH_ADMIN_PASSWORD"  # MLflow's own variable
MIN_PASSWORD = 12  # MLflow's basic-auth refuses shorter passwords
# runuser lives in the system's sbin folders, which a user's PATH may lack
RUNUSER_FOLDERS = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")


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


def _runuser() -> str:
    found = shutil.which("runuser") or shutil.which("runuser", path=os.pathsep.join(RUNUSER_FOLDERS))
    if not found:
        raise MaskdetError(
            "runuser not found (util-linux): as root, PostgreSQL is started as the postgres user with it"
        )
    return found


def _as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL will not run as root; root runs it as the package's ``postgres`` user."""
    if os.geteuid() != 0:
        return command
    return [_runuser(), "-u", "postgres", "--", *command]


def _hand_to_postgres_user(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")


def stored_secret(path: Path, length: int = 24) -> str:
    """The secret in ``path``; a new random one written there (mode 0600, its
    folder 0700) when the file does not exist yet."""
    if path.is_file():
        value = path.read_text().strip()
        if value:
            return value
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    value = secrets.token_urlsafe(length)
    write_secret_file(path, value + "\n")
    return value


@dataclass
class Postgres:
    """A PostgreSQL cluster in ``data`` (created on first start), listening on
    127.0.0.1:``port`` only (no Unix socket: no system folder is needed), with
    its passwords in ``secrets``."""

    data: Path
    port: int
    secrets: Path

    @property
    def url(self) -> str:
        """The SQLAlchemy URL MLflow takes (psycopg 3 driver); the password comes from ``pgpass``."""
        return self.database_url(DATABASE)

    def database_url(self, name: str) -> str:
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{name}"

    @property
    def pgpass(self) -> Path:
        """libpq's password file for the ``mlflow`` role (``PGPASSFILE`` of the MLflow server)."""
        return self.secrets / "pgpass"

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
        superuser_password = self.secrets / "postgres.password"
        if not (self.data / "PG_VERSION").is_file():
            self.data.mkdir(parents=True, exist_ok=True)
            _hand_to_postgres_user(self.data)
            self._initdb(bin_dir, stored_secret(superuser_password))
        elif not superuser_password.is_file():
            raise MaskdetError(
                f"{self.data} was created without passwords (trust), or {superuser_password} is gone: "
                "back it up with pg_dump and start on a new --folder; the server sets passwords up there"
            )
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
        log = str(self.data / "log")
        self._run(str(bin_dir / "pg_ctl"), "-D", str(self.data), "-o", options, "-w", "-l", log, "start")
        self._set_up_role(stored_secret(superuser_password), stored_secret(self.secrets / "mlflow-db.password"))

    def _initdb(self, bin_dir: Path, password: str) -> None:
        # initdb reads the superuser's password from a file; under root it runs as postgres, who
        # must read it, so it lies beside the data folder only while initdb runs.
        pwfile = write_secret_file(self.data.parent / f".initdb-{secrets.token_hex(4)}", password + "\n")
        try:
            _hand_to_postgres_user(pwfile)
            # scram-sha-256 on every line of pg_hba.conf: no connection without a password
            self._run(
                str(bin_dir / "initdb"), "-D", str(self.data), "-U", SUPERUSER, f"--pwfile={pwfile}",
                "--auth=scram-sha-256", "-E", "UTF8",
            )  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)

    def _set_up_role(self, superuser_password: str, password: str) -> None:
        """The ``mlflow`` role (a login, nothing more) owning its two databases, which
        no other role may connect to; its password in the pgpass file."""
        import psycopg
        from psycopg import sql

        connect = f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname=postgres"
        with psycopg.connect(connect, password=superuser_password, autocommit=True) as db:
            verb = "ALTER" if db.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (USER,)).fetchone() else "CREATE"
            db.execute(
                sql.SQL(
                    verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD {}"
                ).format(sql.Identifier(USER), sql.Literal(password))
            )
            for name in (DATABASE, AUTH_DATABASE):
                if not db.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                    db.execute(
                        sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(USER))
                    )
                db.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name)))
        write_secret_file(self.pgpass, f"127.0.0.1:{self.port}:*:{USER}:{password}\n")

    def stop(self) -> None:
        self._run(str(postgres_bin() / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")


@dataclass(frozen=True)
class Tls:
    """The team's certificate and key: the server then speaks HTTPS itself."""

    certfile: Path
    keyfile: Path


def server_command(
    backend_uri: str, artifacts: Path, host: str, port: int, workers: int, tls: Tls | None = None
) -> list[str]:
    """``mlflow server`` with the basic-auth app, the registry and runs in
    ``backend_uri`` and every artifact behind the server (``mlflow-artifacts:/``),
    stored in ``artifacts``."""
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--app-name",
        "basic-auth",
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
    # a client's idle keep-alive connection would hold a stop for uvicorn's 30 s
    uvicorn = "--timeout-graceful-shutdown 5"
    if tls:
        uvicorn += f" --ssl-certfile {shlex.quote(str(tls.certfile))} --ssl-keyfile {shlex.quote(str(tls.keyfile))}"
    return [*command, "--uvicorn-opts", uvicorn]


def auth_config(database_url: str) -> str:
    """MLflow's basic_auth.ini: everyone reads, creators and admins write; users in PostgreSQL."""
    return (
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {database_url}\n"
        f"admin_username = {ADMIN}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # Each password check is a deliberately slow hash: cached for a minute per worker, the smoke
        # study's `dvc repro` took 180 s instead of 342 s. A changed password reaches every worker within it.
        "auth_cache_ttl_seconds = 60\n"
    )


def admin_password(folder: Path, password_file: Path | None = None) -> tuple[str, str]:
    """(the admin password, where it came from): ``password_file``, else
    ``MLFLOW_AUTH_ADMIN_PASSWORD``, else one generated into ``folder``/secrets.
    MLflow uses it only to create the admin on the first start."""
    if password_file is not None:
        return read_secret_file(password_file, "--admin-password-file", MIN_PASSWORD), str(password_file)
    if os.environ.get(ADMIN_PASSWORD_ENV):
        value = os.environ[ADMIN_PASSWORD_ENV]
        if len(value) < MIN_PASSWORD:
            raise InputError(f"{ADMIN_PASSWORD_ENV}: the password must have at least {MIN_PASSWORD} characters")
        return value, ADMIN_PASSWORD_ENV
    path = folder / "secrets" / "mlflow-admin.password"
    return stored_secret(path), str(path)


@dataclass(frozen=True)
class TrackingServer:
    """What a started server tells its operator."""

    url: str
    admin_password_from: str


@contextlib.contextmanager
def tracking_server(
    folder: Path,
    port: int = 5000,
    pg_port: int = 5433,
    host: str = "127.0.0.1",
    workers: int = 4,
    log=None,
    admin_password_file: Path | None = None,
    tls: Tls | None = None,
) -> Iterator[TrackingServer]:
    """PostgreSQL (``folder``/postgres) and ``mlflow server`` with authentication
    (artifacts in ``folder``/artifacts) started; both stopped on exit. A second
    start on the same folder finds the same runs, users and passwords."""
    folder = Path(folder).resolve()
    secrets_folder = folder / "secrets"
    password, password_from = admin_password(folder, admin_password_file)
    if tls:
        for path in (tls.certfile, tls.keyfile):
            if not Path(path).is_file():
                raise InputError(f"{path}: no such certificate or key file (--certfile, --keyfile)")
    database = Postgres(folder / "postgres", pg_port, secrets_folder)
    database.start()
    try:
        artifacts = folder / "artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        config = secrets_folder / "basic_auth.ini"
        write_secret_file(config, auth_config(database.database_url(AUTH_DATABASE)))
        url = f"{'https' if tls else 'http'}://{host}:{port}"
        env = {
            **os.environ,
            "PGPASSFILE": str(database.pgpass),
            "MLFLOW_AUTH_CONFIG_PATH": str(config),
            ADMIN_PASSWORD_ENV: password,
            # CSRF protection of the auth app's forms; the same in every worker and across restarts
            "MLFLOW_FLASK_SERVER_SECRET_KEY": stored_secret(secrets_folder / "flask-secret-key", 32),
        }
        process = subprocess.Popen(
            server_command(database.url, artifacts, host, port, workers, tls),
            stdout=log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # its workers go with it
        )
        try:
            try:
                wait_until_ready(url, process, 120, path="/health", verify=str(tls.certfile) if tls else True)
            except RuntimeError as exc:
                raise MaskdetError(f"mlflow server on {url}: {exc}") from None
            yield TrackingServer(url, password_from)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 15)
            process.wait(timeout=30)
    finally:
        database.stop()

"""Make sure the Redis and PostgreSQL that Hive's settings name are reachable, and that
Prometheus and Alertmanager are installed (``ensure`` installs Debian's packages as root,
their services stopped).

::

    .venv/bin/python scripts/services.py ensure   # use running servers, else start throwaway ones
    .venv/bin/python scripts/services.py status   # what is reachable, what this script started
    .venv/bin/python scripts/services.py stop     # stop only what this script started
    .venv/bin/python scripts/services.py clean    # stop them and delete their data

Throwaway servers listen on loopback, on the port of ``HIVE_BROKER_URL`` and
``HIVE_DATABASE_URL``, and keep their data, logs and PID files in ``.hive/services/``.
They are started only for a local host and only when nothing listens on the port: a
server that is up but refuses us is reported, never replaced.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from psycopg2.extensions import connection

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".hive" / "services"
REDIS_DIR = STATE / "redis"
REDIS_PID = REDIS_DIR / "redis.pid"
REDIS_LOG = REDIS_DIR / "redis.log"

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
REDIS_PACKAGE = "redis-server"
PG_PACKAGE = "postgresql"
# Debian's packages give `prometheus` and `promtool`, `prometheus-alertmanager` and `amtool`,
# which the tests run (their own servers, on free ports). Without the recommended node
# exporter: nothing else to listen anywhere.
PROMETHEUS_INSTALL = [
    "apt-get", "install", "-y", "--no-install-recommends", "prometheus", "prometheus-alertmanager",
]  # fmt: skip
_PROMETHEUS_BINARIES = ("prometheus", "promtool", "prometheus-alertmanager", "amtool")
# Makes invoke-rc.d (and deb-systemd-invoke) leave a package's service stopped.
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
# initdb and postgres refuse to run as root; as root we run them as this user.
PG_OS_USER = "postgres"
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 30.0
# A Unix socket path must fit in sun_path (108 bytes on Linux).
MAX_SOCKET_PATH = 100


class ServiceError(Exception):
    """An expected failure: reported in a line or two, without a traceback."""


class NotInstalledError(ServiceError):
    """Nothing is listening and there is no server binary to start one with."""

    def __init__(self, package: str, endpoint: Endpoint) -> None:
        super().__init__(f"nothing listens on {endpoint} and {package} is not installed")
        self.package = package
        self.endpoint = endpoint


def say(message: str) -> None:
    print(f"services: {message}", file=sys.stderr)


# --- what the settings ask for -------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def is_local(self) -> bool:
        return self.host in LOCAL_HOSTS

    @property
    def bind_address(self) -> str:
        return "::1" if self.host == "::1" else "127.0.0.1"

    def accepts_tcp(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0):
                return True
        except OSError:
            return False


@dataclass(frozen=True)
class RedisTarget:
    url: str
    endpoint: Endpoint  # settings accept only redis:// and rediss:// brokers
    backend_url: str = ""  # the result backend; "" when disabled or not on Redis
    backend_endpoint: Endpoint | None = None


@dataclass(frozen=True)
class PgTarget:
    host: str | None  # None or a path: a Unix socket
    port: int
    user: str
    password: str | None
    database: str | None

    @property
    def endpoint(self) -> Endpoint | None:
        if self.host is None or self.host.startswith("/"):
            return None
        return Endpoint(self.host, self.port)

    def __str__(self) -> str:
        return str(self.endpoint or f"{self.host or 'the default Unix socket'} port {self.port}")


def load_targets() -> tuple[RedisTarget, PgTarget]:
    # Run from a checkout, the checkout's hive wins over whatever the venv has installed.
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from sqlalchemy.engine import make_url

    from hive.errors import SettingsError
    from hive.settings import get_settings

    try:
        settings = get_settings()
    except SettingsError as exc:
        raise ServiceError(str(exc)) from None

    broker_url = settings.broker.url.get_secret_value()
    redis_endpoint = _redis_endpoint(broker_url)
    if redis_endpoint is None:  # the settings refuse anything but redis(s)://, so never
        raise ServiceError(f"HIVE_BROKER_URL: not a redis:// URL: {urlsplit(broker_url).scheme}")
    backend_endpoint = _redis_endpoint(settings.broker.result_backend.get_secret_value())
    backend_url = settings.broker.result_backend.get_secret_value() if backend_endpoint else ""
    db = make_url(settings.database.url.get_secret_value())
    pg = PgTarget(
        host=db.host,
        port=db.port or 5432,
        user=db.username or "postgres",
        password=db.password,
        database=db.database,
    )
    redis_target = RedisTarget(
        settings.broker.url.get_secret_value(), redis_endpoint, backend_url, backend_endpoint
    )
    return redis_target, pg


def _redis_endpoint(url: str) -> Endpoint | None:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        return None
    return Endpoint(parts.hostname or "localhost", parts.port or 6379)


# --- small process helpers -----------------------------------------------------------------


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.strip().splitlines())


def _run(
    argv: list[str],
    what: str,
    cwd: Path | None = None,
    log: Path | None = None,
    stdin: str | None = None,
) -> None:
    """Run a command quietly; on failure raise with its output and the tail of ``log``."""
    # A file, not a pipe: a daemon that inherits it cannot keep us waiting for EOF.
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.run(
                argv,
                input=None if stdin is None else stdin.encode(),
                stdin=subprocess.DEVNULL if stdin is None else None,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                timeout=120,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ServiceError(f"{what} failed: {exc}") from None
        if proc.returncode == 0:
            return
        out.seek(0)
        detail = out.read().decode(errors="replace")
    if log is not None:
        detail += "\n" + _tail(log)
    raise ServiceError(f"{what} failed (exit {proc.returncode}):\n{_indent(detail)}")


def _find_binary(name: str, *fallbacks: str) -> str | None:
    """``name`` on PATH, else the first executable fallback (PATH may lack the sbin dirs)."""
    return shutil.which(name) or next((p for p in fallbacks if os.access(p, os.X_OK)), None)


def _alive(pid: int, name: str) -> bool:
    """Whether ``pid`` is a live process whose command line mentions ``name``."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        # Empty for a zombie; guards against a recycled PID too.
        return name in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return True  # no /proc: trust the PID file


def _read_pid(path: Path, name: str) -> int | None:
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if _alive(pid, name) else None


def _wait_until(check: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def _terminate(pid: int, name: str, sig: signal.Signals) -> bool:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return True
    except PermissionError:
        raise ServiceError(f"pid {pid} belongs to another user; stop it as that user") from None
    return _wait_until(lambda: not _alive(pid, name), STOP_TIMEOUT_S)


@contextmanager
def _locked() -> Iterator[None]:
    """Serialise ensure and stop: two `make test` runs must not both start a server."""
    STATE.mkdir(parents=True, exist_ok=True)
    with (STATE / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


# --- Redis ---------------------------------------------------------------------------------


def _redis_problem(url: str) -> str | None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        return str(exc) or type(exc).__name__
    finally:
        client.close()
    return None


def _redis_pid() -> int | None:
    return _read_pid(REDIS_PID, "redis")


def ensure_redis(target: RedisTarget) -> None:
    endpoint = target.endpoint
    problem = _redis_problem(target.url)
    if problem is not None:
        if endpoint.accepts_tcp():
            raise ServiceError(f"redis: {endpoint} is up but unusable: {problem}")
        if not endpoint.is_local:
            raise ServiceError(f"redis: cannot reach {endpoint}: {problem}")
        if _redis_pid() is not None:
            say(f"redis: the throwaway server is not on {endpoint}; restarting it there")
            stop_redis()
        start_redis(target, endpoint)
    ensure_result_backend(target)


def ensure_result_backend(target: RedisTarget) -> None:
    """Check a result backend that is not on the broker's server; never start one for it.

    Publishing a step goes through the backend too: a dead one leaves runs queued.
    """
    backend = target.backend_endpoint
    if backend is None or backend == target.endpoint:
        return
    problem = _redis_problem(target.backend_url)
    if problem is None:
        return
    scheme = urlsplit(target.url).scheme
    suggestion = f"HIVE_RESULT_BACKEND={scheme}://{target.endpoint}/1 (the broker's server) or "
    raise ServiceError(
        f"redis: the result backend (HIVE_RESULT_BACKEND) at {backend} does not answer: "
        f"{problem.rstrip('.')}; set {suggestion}"
        "HIVE_RESULT_BACKEND= (none: outputs live in PostgreSQL)"
    )


def start_redis(target: RedisTarget, endpoint: Endpoint) -> None:
    binary = _find_binary("redis-server", "/usr/bin/redis-server", "/usr/local/bin/redis-server")
    if binary is None:
        raise NotInstalledError(REDIS_PACKAGE, endpoint)
    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    REDIS_PID.unlink(missing_ok=True)
    argv = [binary, "--daemonize", "yes", "--port", str(endpoint.port)]
    argv += ["--bind", endpoint.bind_address, "--save", "", "--appendonly", "no"]
    # Production runs noeviction (a broker must never drop messages); so do tests.
    argv += ["--maxmemory-policy", "noeviction", "--dir", str(REDIS_DIR)]
    argv += ["--pidfile", str(REDIS_PID), "--logfile", str(REDIS_LOG)]
    config = _redis_auth_config(target.url)
    if config:
        # On standard input ("-"), so the password is in no process list.
        argv.insert(1, "-")
    _run(argv, "redis-server", log=REDIS_LOG, stdin=config or None)
    if not _wait_until(lambda: _redis_problem(target.url) is None, 10):
        log = _indent(_tail(REDIS_LOG))
        raise ServiceError(f"redis: started redis-server but {endpoint} did not answer:\n{log}")
    pid = _redis_pid()
    say(f"redis: started a throwaway server on {endpoint} (pid {pid}, in {_rel(REDIS_DIR)})")


def _redis_auth_config(url: str) -> str:
    """Config lines giving a throwaway server the password (and ACL user) the URL names."""
    parts = urlsplit(url)
    if parts.password is None:
        return ""
    password = unquote(parts.password)
    user = unquote(parts.username or "")
    if user in ("", "default"):
        return f"requirepass {_redis_quote(password)}\n"
    return f"user {_redis_quote(user)} on {_redis_quote('>' + password)} ~* &* +@all\n"


def _redis_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def stop_redis() -> bool:
    pid = _redis_pid()
    if pid is None:
        REDIS_PID.unlink(missing_ok=True)
        return False
    if not _terminate(pid, "redis", signal.SIGTERM):
        raise ServiceError(f"redis: pid {pid} did not stop within {STOP_TIMEOUT_S:.0f}s")
    REDIS_PID.unlink(missing_ok=True)
    say(f"redis: stopped the throwaway server (pid {pid})")
    return True


# --- PostgreSQL ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PgAccount:
    """Who runs initdb and postgres: this process's user, or the postgres user when root."""

    uid: int | None = None  # None: this process's own user
    gid: int | None = None

    @classmethod
    def for_this_process(cls) -> PgAccount:
        if os.geteuid() != 0:
            return cls()
        try:
            account = pwd.getpwnam(PG_OS_USER)
        except KeyError:
            raise ServiceError(
                f"postgres: initdb refuses to run as root and there is no {PG_OS_USER!r} user "
                f"to run it as (useradd --system {PG_OS_USER}, or run as another user)"
            ) from None
        return cls(account.pw_uid, account.pw_gid)

    def command(self, argv: list[str]) -> list[str]:
        if self.uid is None:
            return argv
        runuser = _find_binary("runuser", "/usr/sbin/runuser", "/sbin/runuser")
        if runuser is not None:
            return [runuser, "-u", PG_OS_USER, "--", *argv]
        return ["su", PG_OS_USER, "-s", "/bin/sh", "-c", shlex.join(argv)]

    def make_dir(self, path: Path, mode: int) -> None:
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(mode)
        if self.uid is not None and self.gid is not None:
            os.chown(path, self.uid, self.gid)

    def can_write(self, path: Path) -> bool:
        if self.uid is None:
            return os.access(path, os.W_OK | os.X_OK)
        probe = subprocess.run(
            self.command(["test", "-w", str(path)]),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            cwd="/",
            check=False,
        )
        return probe.returncode == 0


def _pg_homes() -> list[Path]:
    """Where a throwaway cluster may live: in the project, or under the temp dir.

    The second is for root in a checkout the postgres user cannot reach (say under /root).
    """
    digest = hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
    return [STATE, Path(tempfile.gettempdir()) / f"hive-services-{digest}"]


def _postmaster_pid(data: Path) -> int | None:
    return _read_pid(data / "postmaster.pid", "postgres")


def _running_postmasters() -> list[tuple[int, Path]]:
    found = []
    for home in _pg_homes():
        pid = _postmaster_pid(home / "pg")
        if pid is not None:
            found.append((pid, home / "pg"))
    return found


def _pg_bin_dirs() -> list[Path]:
    """Directories holding initdb and pg_ctl: PATH first, then Debian's and RHEL's layouts."""
    candidates = []
    for name in ("pg_ctl", "initdb"):
        found = shutil.which(name)
        if found:
            candidates.append(Path(found).resolve().parent)

    def version(path: Path) -> int:
        digits = re.sub(r"\D", "", path.parent.name)
        return int(digits) if digits else 0

    for pattern in ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin"):
        candidates += sorted(Path("/").glob(pattern.lstrip("/")), key=version, reverse=True)
    unique = dict.fromkeys(candidates)
    return [d for d in unique if (d / "initdb").is_file() and (d / "pg_ctl").is_file()]


def _pg_major(bindir: Path) -> str:
    out = subprocess.run(
        [str(bindir / "pg_ctl"), "--version"], capture_output=True, text=True, check=False
    ).stdout
    match = re.search(r"\)\s*(\d+)", out)
    return match.group(1) if match else ""


def _pg_connect(target: PgTarget, dbname: str) -> connection:
    import psycopg2

    return psycopg2.connect(
        host=target.host,
        port=target.port,
        user=target.user,
        password=target.password,
        dbname=dbname,
        connect_timeout=3,
    )


def _pg_problem(target: PgTarget) -> str | None:
    import psycopg2

    try:
        _pg_connect(target, "postgres").close()
    except psycopg2.Error as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        return lines[0] if lines else type(exc).__name__
    return None


def ensure_postgres(target: PgTarget) -> None:
    problem = _pg_problem(target)
    if problem is not None:
        endpoint = target.endpoint
        if endpoint is None:
            raise ServiceError(f"postgres: cannot connect through {target}: {problem}")
        if endpoint.accepts_tcp():
            hint = _auth_hint(problem, endpoint)
            raise ServiceError(f"postgres: {endpoint} is up but refused us: {problem}{hint}")
        if not endpoint.is_local:
            raise ServiceError(f"postgres: cannot reach {endpoint}: {problem}")
        if _running_postmasters():
            say(f"postgres: the throwaway server is not on {endpoint}; restarting it there")
            stop_postgres()
        start_postgres(target, endpoint)
    ensure_database(target)


def _auth_hint(problem: str, endpoint: Endpoint) -> str:
    """What to do when a local server wants a password, as Debian's packaged cluster does."""
    if not endpoint.is_local or not re.search(r"password|pg_hba\.conf", problem):
        return ""
    port = 55432 if endpoint.port != 55432 else 55433
    return (
        "; put the password in HIVE_DATABASE_URL, or name a free port in it "
        f"(e.g. postgresql+psycopg2://postgres@127.0.0.1:{port}/hive) to get a throwaway server"
    )


def _pg_home(account: PgAccount) -> Path:
    for home in _pg_homes():
        if (home / "pg" / "PG_VERSION").is_file():
            return home
    local, fallback = _pg_homes()
    account.make_dir(local / "pg-run", 0o755)
    if account.can_write(local / "pg-run"):
        return local
    shutil.rmtree(local / "pg-run", ignore_errors=True)
    say(f"postgres: the {PG_OS_USER} user cannot reach {_rel(STATE)}; using {fallback}")
    fallback.mkdir(parents=True, exist_ok=True)
    if fallback.stat().st_uid != os.geteuid():
        raise ServiceError(f"postgres: {fallback} belongs to another user; remove it")
    fallback.chmod(0o755)
    return fallback


def start_postgres(target: PgTarget, endpoint: Endpoint) -> None:
    bindirs = _pg_bin_dirs()
    if not bindirs:
        raise NotInstalledError(PG_PACKAGE, endpoint)
    account = PgAccount.for_this_process()
    home = _pg_home(account)
    data, run = home / "pg", home / "pg-run"
    account.make_dir(run, 0o755)

    version_file = data / "PG_VERSION"
    initialised = version_file.read_text().strip() if version_file.is_file() else ""
    bindir = next((d for d in bindirs if _pg_major(d) == initialised), bindirs[0])
    if initialised and initialised != _pg_major(bindir):
        say(f"postgres: {_rel(data)} is from PostgreSQL {initialised}; re-creating it")
        initialised = ""
    if not initialised:
        # Throwaway by design: a half-made or outdated cluster is simply made again.
        shutil.rmtree(data, ignore_errors=True)
        account.make_dir(data, 0o700)
        initdb = [str(bindir / "initdb"), "-D", str(data), "-U", target.user, "--auth=trust"]
        initdb += ["-E", "UTF8", "--no-locale", "--no-sync"]
        _run(account.command(initdb), "initdb", cwd=run)
        say(f"postgres: initialised a throwaway cluster in {_rel(data)}")

    sockets = run if len(str(run / f".s.PGSQL.{endpoint.port}")) <= MAX_SOCKET_PATH else None
    socket_dir = str(sockets or tempfile.gettempdir())
    options = f"-p {endpoint.port} -k {shlex.quote(socket_dir)}"
    options += f" -c listen_addresses={endpoint.bind_address}"
    log = run / "postgres.log"
    pg_ctl = [str(bindir / "pg_ctl"), "start", "-D", str(data), "-l", str(log), "-w"]
    pg_ctl += ["-t", str(START_TIMEOUT_S), "-o", options]
    _run(account.command(pg_ctl), "pg_ctl start", cwd=run, log=log)
    if not _wait_until(lambda: _pg_problem(target) is None, 10):
        raise ServiceError(
            f"postgres: started, but {endpoint} refuses us: {_pg_problem(target)}\n"
            f"{_indent(_tail(log))}"
        )
    pid = _postmaster_pid(data)
    say(f"postgres: started a throwaway server on {endpoint} (pid {pid}, in {_rel(home)})")


def stop_postgres() -> bool:
    stopped = False
    for pid, data in _running_postmasters():
        # SIGINT is PostgreSQL's fast shutdown: roll back open transactions, then exit.
        if not _terminate(pid, "postgres", signal.SIGINT):
            raise ServiceError(f"postgres: pid {pid} did not stop within {STOP_TIMEOUT_S:.0f}s")
        say(f"postgres: stopped the throwaway server (pid {pid}, {_rel(data)})")
        stopped = True
    return stopped


def ensure_database(target: PgTarget) -> None:
    name = target.database
    if not name or name == "postgres":
        return
    import psycopg2
    from psycopg2 import errors, sql

    try:
        conn = _pg_connect(target, "postgres")
    except psycopg2.Error as exc:
        raise ServiceError(f"postgres: cannot connect to create {name!r}: {exc}") from None
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is not None:
                return
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except (errors.DuplicateDatabase, errors.UniqueViolation):
        return  # someone else created it between our check and our CREATE
    except psycopg2.Error as exc:
        raise ServiceError(f"postgres: cannot create database {name!r}: {exc}".strip()) from None
    finally:
        conn.close()
    say(f"postgres: created database {name!r} on {target}")


# --- commands ------------------------------------------------------------------------------


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def cmd_ensure() -> int:
    redis_target, pg_target = load_targets()
    failures: list[ServiceError] = []
    with _locked():
        for step in (lambda: ensure_redis(redis_target), lambda: ensure_postgres(pg_target)):
            try:
                step()
            except NotInstalledError as exc:
                failures.append(exc)
            except ServiceError as exc:
                say(str(exc))
                failures.append(exc)
    missing = [exc for exc in failures if isinstance(exc, NotInstalledError)]
    if missing:
        # One line whatever is missing: the command to run is what the reader needs.
        where = " or ".join(str(exc.endpoint) for exc in missing)
        sudo = "" if os.geteuid() == 0 else "sudo "
        packages = " ".join(exc.package for exc in missing)
        say(
            f"nothing listens on {where} and no server is installed to start; "
            f"run: {sudo}apt-get install -y {packages}"
        )
    try:
        ensure_prometheus()
    except ServiceError as exc:
        say(str(exc))
        failures.append(exc)
    return 1 if failures else 0


def ensure_prometheus() -> None:
    """Prometheus and Alertmanager (with ``promtool`` and ``amtool``) are installed: installed
    now as root, else the line to run. The packages' own services are left stopped, so none
    of theirs listens on 9090 or 9093 (the tests start theirs on free ports, with their own
    config)."""
    if all(_find_binary(name, f"/usr/bin/{name}") for name in _PROMETHEUS_BINARIES):
        return
    line = " ".join(PROMETHEUS_INSTALL)
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sudo = "" if os.geteuid() == 0 else "sudo "
        raise ServiceError(f"prometheus or its alertmanager is not installed; run: {sudo}{line}")
    say(f"installing Prometheus and Alertmanager ({line}), their services left stopped")
    ours = not POLICY_RC_D.exists()
    if ours:
        POLICY_RC_D.write_text("#!/bin/sh\n# scripts/services.py: start no service\nexit 101\n")
        POLICY_RC_D.chmod(0o755)
    try:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        done = subprocess.run(
            PROMETHEUS_INSTALL, env=env, capture_output=True, text=True, timeout=600, check=False
        )
    finally:
        if ours:
            POLICY_RC_D.unlink(missing_ok=True)
    if done.returncode != 0:
        raise ServiceError(
            f"{line} failed (exit {done.returncode}):\n{_indent(done.stdout + done.stderr)}"
        )


def cmd_stop() -> int:
    with _locked():
        stopped = [stop_redis(), stop_postgres()]
    if not any(stopped):
        say("nothing to stop: no throwaway server is running")
    return 0


def cmd_clean() -> int:
    """Stop the throwaway servers and delete their data, wherever it was kept."""
    cmd_stop()
    with _locked():
        for home in _pg_homes():
            for path in (home / "pg", home / "pg-run", home / "redis"):
                shutil.rmtree(path, ignore_errors=True)
        fallback = _pg_homes()[1]
        if fallback.is_dir() and fallback.stat().st_uid == os.geteuid():
            shutil.rmtree(fallback, ignore_errors=True)
    return 0


def _report(name: str, where: object, problem: str | None, pid: int | None) -> bool:
    if problem is None:
        ours = f"throwaway, pid {pid}" if pid else "not started by this script"
        say(f"{name}: reachable at {where} ({ours})")
        return True
    elsewhere = f" (the throwaway server, pid {pid}, listens elsewhere)" if pid else ""
    say(f"{name}: NOT reachable at {where}: {problem}{elsewhere}")
    return False


def cmd_status() -> int:
    redis_target, pg_target = load_targets()
    problem = _redis_problem(redis_target.url)
    redis_ok = _report("redis", redis_target.endpoint, problem, _redis_pid())
    postmasters = _running_postmasters()
    pid = postmasters[0][0] if postmasters else None
    pg_ok = _report("postgres", pg_target, _pg_problem(pg_target), pid)
    return 0 if redis_ok and pg_ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Make sure the Redis and PostgreSQL that Hive's settings name are reachable."
    )
    parser.add_argument("command", choices=["ensure", "status", "stop", "clean"])
    args = parser.parse_args(argv)
    commands = {"ensure": cmd_ensure, "status": cmd_status, "stop": cmd_stop, "clean": cmd_clean}
    try:
        return commands[args.command]()
    except ServiceError as exc:
        say(str(exc))
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""Private PostgreSQL and Redis servers for the scale-out profile on one machine.

The scale-out profile keeps conversations in PostgreSQL (Rasa's SQL tracker store) and
serialises the turns of one conversation across several Rasa servers with a Redis lock
store. In production these are the operator's servers; here they are started from the
Debian packages (``postgresql-15``, ``redis-server``) in a folder of their own, on free
ports, for ``xiaoer services`` (an integrator trying the profile), the scale-out tests and
the benchmark. Nothing is installed or configured system-wide and nothing is left running.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from xiaoer.devtools.stack import free_port

PG_VERSION = "15"


class ServiceError(RuntimeError):
    """A service could not be started; the message says what to install or read."""


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    db: str
    user: str
    password: str
    data_dir: str = ""  # the cluster's files, options and log: stop_postgres / start_postgres
    options: str = ""
    log_file: str = ""

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.db}"


def stop_postgres(pg: Postgres, mode: str = "fast") -> None:
    """Stop the server (fault tests: PostgreSQL restarted under load)."""
    subprocess.run(
        _as_postgres([pg_bin("pg_ctl"), "-D", pg.data_dir, "-m", mode, "-w", "stop"]),
        capture_output=True, check=True,
    )  # fmt: skip


def start_postgres(pg: Postgres) -> None:
    """Start a stopped server again, on its port."""
    subprocess.run(
        _as_postgres([pg_bin("pg_ctl"), "-D", pg.data_dir, "-l", pg.log_file, "-o", pg.options,
                      "-w", "start"]),
        capture_output=True, check=True,
    )  # fmt: skip


@dataclass(frozen=True)
class Redis:
    host: str
    port: int
    argv: tuple[str, ...] = ()  # how it was started: stop_redis / start_redis
    pidfile: str = ""


def stop_redis(r: Redis) -> None:
    """Stop the server (fault tests: Redis restarted under load)."""
    pid = int(Path(r.pidfile).read_text().strip())
    os.kill(pid, 15)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, 9)


def start_redis(r: Redis) -> None:
    """Start a stopped server again, on its port (it writes its own pidfile)."""
    import redis  # type: ignore[import-untyped,unused-ignore]

    subprocess.Popen(
        list(r.argv), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
    )
    client = redis.Redis(host=r.host, port=r.port)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            return
        except redis.RedisError as exc:
            if time.monotonic() > deadline:
                raise ServiceError("Redis did not start again") from exc
            time.sleep(0.1)


def pg_bin(name: str) -> str:
    path = Path(f"/usr/lib/postgresql/{PG_VERSION}/bin") / name
    if not path.exists():
        raise ServiceError(
            f"PostgreSQL {PG_VERSION} is not installed ({path} missing): "
            f"apt-get install -y postgresql-{PG_VERSION}"
        )
    return str(path)


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the ``postgres`` user then."""
    if os.geteuid() != 0:
        return cmd
    # runuser lives in /usr/sbin, which a minimal PATH (CI, cron) may not include
    runuser = shutil.which("runuser") or next(
        (p for p in ("/usr/sbin/runuser", "/sbin/runuser") if Path(p).exists()), None
    )
    if runuser is None:
        raise ServiceError("runuser (util-linux) is needed to start PostgreSQL as root")
    return [runuser, "-u", "postgres", "--", *cmd]


@contextmanager
def running_postgres(
    workdir: Path, db: str | None = "xiaoer", user: str = "xiaoer"
) -> Iterator[Postgres]:
    """A fresh PostgreSQL cluster with one database and a password user (its superuser).

    ``db=None`` creates no database (the result names ``postgres``, the maintenance
    database): the scale-out profile then creates its user and databases as
    docs/deployment.md says. Its files live in a folder of their own owned by the server's user (as root that is
    ``postgres``, which cannot enter root's private temporary folders); ``workdir`` gets
    a ``postgres.log`` link to the server log."""
    workdir.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="xiaoer-pg-"))
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        os.chown(home, pg.pw_uid, pg.pw_gid)
    data, log, pwfile = home / "data", home / "postgres.log", home / "pwfile"
    password = secrets.token_urlsafe(16)
    pwfile.write_text(password)
    pwfile.chmod(0o600)
    if os.geteuid() == 0:
        os.chown(pwfile, pg.pw_uid, pg.pw_gid)
    run = subprocess.run
    try:
        init = run(
            _as_postgres([
                pg_bin("initdb"), "-D", str(data), "-U", user, "--pwfile", str(pwfile),
                "--auth", "scram-sha-256", "-E", "UTF8", "--locale", "C.UTF-8",
            ]),
            capture_output=True, text=True,
        )  # fmt: skip
        pwfile.unlink()
        if init.returncode != 0:
            raise ServiceError(f"initdb failed: {init.stderr[-2000:]}")
        port = free_port()
        opts = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off"
        start = run(
            _as_postgres([pg_bin("pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "start"]),
            capture_output=True, text=True,
        )  # fmt: skip
        link = workdir / "postgres.log"
        if not link.exists():
            link.symlink_to(log)
        if start.returncode != 0:
            raise ServiceError(f"PostgreSQL did not start, see {log}: {start.stderr[-1000:]}")
        try:
            env = {**os.environ, "PGPASSWORD": password}
            for name in [db] if db else []:
                created = run(
                    [pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", user, name],
                    capture_output=True, text=True, env=env,
                )  # fmt: skip
                if created.returncode != 0:
                    raise ServiceError(f"createdb failed: {created.stderr[-1000:]}")
            yield Postgres(
                "127.0.0.1", port, db or "postgres", user, password, str(data), opts, str(log)
            )
        finally:
            run(
                _as_postgres([pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                capture_output=True,
            )
    finally:
        shutil.rmtree(data, ignore_errors=True)


@contextmanager
def running_redis(workdir: Path) -> Iterator[Redis]:
    """A Redis server on a free port, without persistence, stopped on exit."""
    exe = shutil.which("redis-server")
    if not exe:
        raise ServiceError("redis-server is not installed: apt-get install -y redis-server")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    pidfile = workdir / "redis.pid"
    argv = (
        exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
        "--dir", str(workdir), "--logfile", str(workdir / "redis.log"),
        "--pidfile", str(pidfile),
    )  # fmt: skip
    proc = subprocess.Popen(
        list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        import redis

        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.RedisError as exc:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise ServiceError(f"Redis did not start, see {workdir / 'redis.log'}") from exc
                time.sleep(0.1)
        yield Redis("127.0.0.1", port, argv, str(pidfile))
    finally:
        if proc.poll() is not None and pidfile.exists():  # restarted by a fault test
            try:
                os.kill(int(pidfile.read_text().strip()), 15)
            except (ProcessLookupError, ValueError):
                pass
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

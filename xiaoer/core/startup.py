"""Start-up checks: what every process needs, checked before it says it is ready.

``xiaoer up``, each Rasa server (``xiaoer.servers.rasaserver``), the action server and the
worker call these before starting; a failed check raises :class:`StartupError`, whose
text is the one line the process prints before it exits non-zero. The readiness endpoint
of the Rasa server (``xiaoer.servers.readiness``) runs the same checks.

* the tracker store, the event broker and a Redis lock store of the endpoints file are
  reachable (the URL Rasa itself would build): Rasa 3.6 would otherwise log the error and
  keep conversations in memory;
* the project database is reachable and at the newest schema (SQLite: migrated here);
* the shop backend has its credentials and answers a cheap read within its timeout;
* the ports are free (and who holds a taken one);
* the model is a Rasa model archive.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import tarfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

from xiaoer.core.engine import masked_url

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 5
# an order id no shop has: the backend's cheap read answers "not found" when it works
PROBE_ORDER_ID = "1000000000000000001"


class StartupError(RuntimeError):
    """A start-up check failed. ``str()`` is the one line to show; ``short`` the reason
    without addresses (what the public readiness endpoint says)."""

    def __init__(self, message: str, short: str = "failed") -> None:
        super().__init__(message)
        self.short = short


@dataclass(frozen=True)
class StoreInfo:
    """What a store of the endpoints file is, for the banner."""

    kind: str  # tracker_store, event_broker, lock_store
    where: str  # masked URL, or "in memory"


def _one_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return re.sub(r"\s+", " ", str(orig)).strip()[:300] or type(exc).__name__


# --- SQL stores of the endpoints file ----------------------------------------------------
def rasa_sql_url(config: Any, base: Path | None = None) -> tuple[URL | str, str | None]:
    """The SQLAlchemy URL Rasa builds for an SQL tracker store or event broker of an
    endpoints file (``SQLTrackerStore.get_db_url``), and its ``login_db`` (PostgreSQL:
    Rasa connects there and creates ``db`` itself)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from rasa.core.tracker_store import SQLTrackerStore

    kwargs = dict(config.kwargs)
    login_db = kwargs.get("login_db")
    with warnings.catch_warnings():  # URL() called directly (SQLAlchemy 1.4)
        warnings.simplefilter("ignore")
        url = SQLTrackerStore.get_db_url(
            kwargs.get("dialect", "sqlite"),
            config.url,
            kwargs.get("port"),
            kwargs.get("db", "rasa.db"),
            kwargs.get("username"),
            kwargs.get("password"),
            login_db,
            kwargs.get("query"),
        )
    if base is not None and isinstance(url, URL) and url.get_backend_name() == "sqlite":
        path = Path(str(url.database or ""))
        if url.database and not path.is_absolute():  # as seen from the server's folder
            url = url.set(database=str(base / path))
    return url, login_db


def _sql_hint(message: str, url: URL, what: str, endpoints: Path) -> tuple[str, str]:
    """(hint for the operator, short reason) for a failed connection."""
    if "does not exist" in message and "database" in message:
        return (
            f"create it with: .venv/bin/xiaoer migrate --endpoints {endpoints}, or by hand: "
            f"createdb -h {url.host} -p {url.port or 5432} -U {url.username} {url.database} "
            "(docs/deployment.md)",
            "database missing",
        )
    if "password authentication failed" in message or "no password supplied" in message:
        return ("check the user name and password (XIAOER_PG_USER / XIAOER_PG_PASSWORD)",
                "authentication failed")  # fmt: skip
    if "unable to open database file" in message:
        return (f"check that the folder of {url.database} exists and is writable", "unreachable")
    return (
        f"check that the database server runs at {url.host}:{url.port} and {what} in "
        f"{endpoints}",
        "unreachable",
    )


def check_sql(url: URL | str, what: str, endpoints: Path, label: str) -> None:
    """Connect to ``url`` and run ``SELECT 1``; StartupError naming ``label`` otherwise."""
    parsed = make_url(str(url) if not isinstance(url, URL) else url)
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql":
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
    try:
        engine = create_engine(parsed, future=True, connect_args=connect_args)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        finally:
            engine.dispose()
    except (SQLAlchemyError, OSError, ImportError) as exc:
        message = _one_line(exc)
        hint, short = _sql_hint(message, parsed, what, endpoints)
        raise StartupError(
            f"{label} unreachable: {masked_url(parsed)}: {message} ({hint})", short
        ) from exc


def check_redis(config: Any, endpoints: Path) -> str:
    import redis  # type: ignore[import-untyped,unused-ignore]

    kwargs = dict(config.kwargs)
    host = config.url or "localhost"
    port = int(kwargs.get("port") or 6379)
    db = int(kwargs.get("db") or 1)
    where = f"redis://{host}:{port}/{db}"
    client = redis.Redis(
        host=host, port=port, db=db, password=kwargs.get("password") or None,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS, socket_timeout=CONNECT_TIMEOUT_SECONDS,
    )  # fmt: skip
    try:
        client.ping()
    except redis.RedisError as exc:
        raise StartupError(
            f"lock store unreachable: {where}: {_one_line(exc)} (check that Redis runs at "
            f"{host}:{port} and lock_store in {endpoints})",
            "unreachable",
        ) from exc
    finally:
        client.close()
    return where


class _Unset(str):
    """A ``${VAR}`` value whose variable is not set."""


def _env_loader() -> type:
    """A YAML loader that fills ``${VAR}`` in plain (unquoted) values as Rasa does, but
    marks a missing variable instead of failing: only the sections checked must be whole
    (the worker needs no action server secret to read the event broker)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def env_var(loader: Any, node: Any) -> str:
        value = os.path.expandvars(loader.construct_scalar(node))
        return _Unset(value) if "${" in value else value

    Loader.add_implicit_resolver("!env_var", re.compile(r"^(.*)\$\{(.*)\}(.*)$"), None)
    Loader.add_constructor("!env_var", env_var)
    return Loader


def _unset(value: Any) -> list[str]:
    if isinstance(value, _Unset):
        return re.findall(r"\$\{(\w+)\}", value)
    if isinstance(value, dict):
        return [name for v in value.values() for name in _unset(v)]
    if isinstance(value, list):
        return [name for v in value for name in _unset(v)]
    return []


def _read(endpoints: Path, name: str) -> Any:
    """Section ``name`` of the endpoints file as Rasa reads it (an EndpointConfig)."""
    import warnings

    import yaml

    with warnings.catch_warnings():  # Rasa's imports warn about their own dependencies
        warnings.simplefilter("ignore")
        from rasa.utils.endpoints import EndpointConfig

    try:
        raw = yaml.load(endpoints.read_text(encoding="utf-8"), Loader=_env_loader()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise StartupError(
            f"endpoints file {endpoints}: {_one_line(exc)}", "bad endpoints"
        ) from exc
    section = raw.get(name) if isinstance(raw, dict) else None
    if not section:
        return None
    missing = _unset(section)
    if missing:
        raise StartupError(
            f"endpoints file {endpoints}: {name} needs the environment variable(s) "
            f"{', '.join(sorted(set(missing)))}",
            "bad endpoints",
        )
    return EndpointConfig.from_dict(section)


ALL_STORES = ("tracker_store", "event_broker", "lock_store")


def check_endpoint_stores(
    endpoints: Path, kinds: tuple[str, ...] = ALL_STORES, base: Path | None = None
) -> list[StoreInfo]:
    """Connect to the tracker store, the event broker and a Redis lock store of
    ``endpoints`` (those of ``kinds``) as Rasa would; StartupError on the first that fails.
    Relative SQLite paths are read from ``base`` (default: the current folder, as Rasa)."""
    if not endpoints.is_file():
        raise StartupError(f"endpoints file not found: {endpoints}", "bad endpoints")
    found: list[StoreInfo] = []
    tracker = _read(endpoints, "tracker_store") if "tracker_store" in kinds else False
    if tracker is False:
        pass
    elif tracker is None or tracker.type is None:
        log.warning("no tracker_store in %s: conversations are kept in memory only", endpoints)
        found.append(StoreInfo("tracker_store", "in memory (lost on restart)"))
    elif str(tracker.type).lower() == "sql":
        url, login_db = rasa_sql_url(tracker, base)
        check_sql(url, "tracker_store", endpoints, "tracker store")
        shown = masked_url(url)
        if login_db:  # Rasa creates the database itself from login_db
            shown = shown.rsplit("/", 1)[0] + f"/{tracker.kwargs.get('db')}"
        found.append(StoreInfo("tracker_store", shown))
    else:
        found.append(StoreInfo("tracker_store", str(tracker.type)))
    broker = _read(endpoints, "event_broker") if "event_broker" in kinds else None
    if broker is not None and str(broker.type or "").lower() == "sql":
        url, _ = rasa_sql_url(broker, base)
        check_sql(url, "event_broker", endpoints, "event broker")
        found.append(StoreInfo("event_broker", masked_url(url)))
    lock = _read(endpoints, "lock_store") if "lock_store" in kinds else None
    if lock is not None and "redis" in str(lock.type or "").lower():
        found.append(StoreInfo("lock_store", check_redis(lock, endpoints)))
    return found


# --- the project database ------------------------------------------------------------------
@lru_cache(maxsize=1)
def _head() -> str | None:
    from xiaoer.core import migrate

    return migrate.head()


def check_project_db(url: str | None = None, upgrade_sqlite: bool = True, db: Any = None) -> str:
    """The project database reachable and at the newest revision (SQLite: upgraded here
    when ``upgrade_sqlite``); returns its masked URL."""
    from xiaoer.core import migrate
    from xiaoer.core.db import DatabaseError, create_database, default_url

    try:
        url = url or (db.url if db is not None else default_url())
    except DatabaseError as exc:
        raise StartupError(f"project database: {exc}", "misconfigured") from exc
    where = masked_url(url)
    own = db is None
    try:
        db = db or create_database(url)
    except (DatabaseError, SQLAlchemyError, ImportError) as exc:
        raise StartupError(f"project database {where}: {_one_line(exc)}", "misconfigured") from exc
    try:
        try:
            with db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError) as exc:
            message = _one_line(exc)
            hint, short = _sql_hint(
                message, db.engine.url, "XIAOER_DATABASE_URL or database.url", Path("xiaoer.yml")
            )
            if short == "database missing":
                hint += ", then `xiaoer migrate`"
            raise StartupError(f"project database unreachable: {where}: {message} ({hint})",
                               short) from exc  # fmt: skip
        try:
            if db.dialect == "sqlite" and upgrade_sqlite:
                migrate.ensure_current(db)
                return where
            revision = migrate.current(db)
        except (SQLAlchemyError, DatabaseError) as exc:
            raise StartupError(f"project database {where}: {_one_line(exc)}", "failed") from exc
        if revision != _head():
            raise StartupError(
                f"project database {where} is at revision {revision or 'none'}, this version "
                f"needs {_head()}: run `xiaoer migrate` (once, before starting the servers)",
                "not migrated: run xiaoer migrate",
            )
        return where
    finally:
        if own:
            db.dispose()


# --- the shop backend --------------------------------------------------------------------
def backend_description(settings: Any) -> str:
    """ "sqlite (demo shop)" or "doudian (openapi-fxg.jinritemai.com)", for the banner."""
    if settings.backend_type == "doudian":
        from urllib.parse import urlsplit

        from xiaoer.doudian.client import BASE_URL_ENV

        base = (
            os.environ.get(BASE_URL_ENV)
            or settings.doudian.get("base_url")
            or ("https://openapi-fxg.jinritemai.com")
        )
        return f"doudian ({urlsplit(str(base)).netloc or base})"
    if settings.backend_type == "sqlite":
        return "sqlite (演示店铺 demo shop)"
    return str(settings.backend_type)


def build_backend(settings: Any) -> Any:
    """The backend of ``settings`` (unguarded: the check wants the real error); missing
    credentials raise StartupError with the backend's own message."""
    from xiaoer.shop.factory import create_backend

    try:
        backend = create_backend(settings)
    except Exception as exc:  # noqa: BLE001 - DoudianConfigError, ValueError (unknown type)
        raise StartupError(
            f"shop backend {settings.backend_type}: {exc}", "missing credentials"
            if type(exc).__name__ == "DoudianConfigError" else "misconfigured",
        ) from exc  # fmt: skip
    return getattr(backend, "inner", backend)


def _business_error(exc: BaseException) -> bool:
    """A Doudian business error (5xxxx, e.g. "no such order" worded otherwise): the request
    passed the signature and credential checks, which is all the probe asks."""
    from xiaoer.doudian.protocol import DoudianApiError, as_int

    return isinstance(exc, DoudianApiError) and 50000 <= (as_int(exc.code, 0) or 0) < 60000


async def probe_backend(backend: Any, timeout: float, name: str = "") -> None:
    """One cheap read (an order that does not exist) within the backend timeout."""
    try:
        await asyncio.wait_for(backend.get_order(PROBE_ORDER_ID), timeout=timeout)
    except asyncio.TimeoutError as exc:
        raise StartupError(
            f"shop backend {name} did not answer within {timeout:g} s (backend.timeout_seconds)",
            "timeout",
        ) from exc
    except Exception as exc:  # noqa: BLE001 - whatever the backend raises
        if _business_error(exc):
            return  # the platform accepted the credentials and answered about the order
        raise StartupError(
            f"shop backend {name} test call failed: {type(exc).__name__}: {_one_line(exc)}",
            "failed",
        ) from exc


def check_backend(settings: Any) -> str:
    """Credentials present and a test call answering; returns the description."""
    backend = build_backend(settings)

    async def run() -> None:
        try:
            await probe_backend(backend, settings.backend_timeout, settings.backend_type)
        finally:
            close = getattr(backend, "aclose", None)
            if close is not None:
                await close()

    asyncio.run(run())
    return backend_description(settings)


# --- ports -------------------------------------------------------------------------------
def port_owner(port: int) -> str | None:
    """ "python3 (pid 1234)" for the process listening on ``port`` (Linux /proc; None
    when it cannot tell, e.g. another user's process)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if (
                len(fields) > 9
                and fields[3] == "0A"
                and int(fields[1].rsplit(":", 1)[1], 16) == port
            ):
                inodes.add(fields[9])
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in wanted:
                    name = (proc / "comm").read_text().strip()
                    cmdline = (proc / "cmdline").read_bytes().split(b"\0")
                    ours = next(
                        (a.decode() for a in cmdline if a.startswith(b"xiaoer.")), ""
                    )  # only our module names, never other arguments (secrets)
                    return f"{name} (pid {proc.name}{', ' + ours if ours else ''})"
        except OSError:
            continue
    return None


def port_free(port: int, host: str = "0.0.0.0") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def check_ports(ports: dict[str, int], host: str = "0.0.0.0") -> None:
    """StartupError naming every taken port and, when it can tell, its process."""
    taken = []
    for what, port in ports.items():
        if port and not port_free(port, host):
            owner = port_owner(port)
            taken.append(f"{port} ({what}{', used by ' + owner if owner else ''})")
    if taken:
        raise StartupError(f"port(s) in use: {'; '.join(taken)}", "port in use")


# --- the model ---------------------------------------------------------------------------
def check_model(path: Path) -> Path:
    """The model archive ``path`` (a folder: its newest ``*.tar.gz``, as Rasa picks it)
    exists and is a Rasa model archive; returns the file."""
    path = Path(path)
    if path.is_dir():
        models = sorted(path.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
        if not models:
            raise StartupError(f"no model in {path} (train one with `xiaoer train`)", "no model")
        path = models[-1]
    if not path.is_file():
        raise StartupError(f"model not found: {path} (train one with `xiaoer train`)", "no model")
    try:
        with tarfile.open(path, "r:gz") as archive:
            member = archive.extractfile("metadata.json")
            metadata = json.load(member) if member is not None else {}
    except (tarfile.TarError, KeyError, OSError, ValueError) as exc:
        raise StartupError(
            f"model not loadable: {path} is not a Rasa model archive ({_one_line(exc)}); "
            f"train one with `xiaoer train`",
            "bad model",
        ) from exc
    if not isinstance(metadata, dict) or "domain" not in metadata:
        raise StartupError(f"model not loadable: {path} has no Rasa model metadata", "bad model")
    return path


# --- channels (for the banner) -----------------------------------------------------------
def channels(credentials: Path) -> list[str]:
    """The input channels of ``credentials.yml`` (short names: rest, douyin, doudian_push, test_chat: the console's test chat)."""
    import yaml

    try:
        raw = yaml.safe_load(credentials.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return []
    names = []
    for key in raw:
        short = str(key).rsplit(".", 1)[-1]
        short = {"XiaoerRestInput": "rest", "DouyinInput": "douyin",
                 "DoudianPushInput": "doudian_push", "SandboxInput": "test_chat"}.get(short, short)  # fmt: skip
        names.append(short)
    return names


def fail(error: StartupError, logger: logging.Logger | None = None) -> int:
    """Log the failed check (one line) and return the exit code."""
    (logger or log).error("start-up check failed: %s", error)
    return 3


# --- xiaoer up ---------------------------------------------------------------------------
# the environment variables a channel cannot work without (credentials.yml names them)
CHANNEL_SECRETS = {
    "douyin": ("client_key_env", "client_secret_env", "account_open_id_env", "access_token_env"),
    "doudian_push": ("app_key_env", "app_secret_env"),
}


def channel_lines(credentials: Path) -> list[str]:
    """Each input channel of ``credentials.yml``, with the variables it still misses
    (such a channel answers 503 until they are set)."""
    import yaml

    try:
        raw = yaml.safe_load(credentials.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return []
    lines = []
    for key, name in zip(raw, channels(credentials), strict=True):
        config = raw.get(key) or {}
        missing = [
            str(config[k]) for k in CHANNEL_SECRETS.get(name, ())
            if isinstance(config, dict) and config.get(k)
            and not os.environ.get(str(config[k]), "").strip()
            and not config.get(k.removesuffix("_env"))
        ]  # fmt: skip
        lines.append(f"{name}（未配置 not configured: {', '.join(missing)}）" if missing else name)
    return lines


def _pad(label: str, width: int) -> str:
    """``label`` padded to ``width`` terminal columns (Chinese characters take two)."""
    import unicodedata

    used = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in label)
    return label + " " * max(1, width - used)


def banner(
    *,
    backend: str,
    credentials: Path,
    project_db: str,
    stores: list[StoreInfo],
    model: Path,
    worker: str,
    extra: str = "",
) -> str:
    """What ``xiaoer up`` prints once everything answers."""
    names = {"tracker_store": "会话 tracker store", "event_broker": "事件 event broker",
             "lock_store": "锁 lock store"}  # fmt: skip
    lines = [
        f"  店铺后台 backend:        {backend}",
        f"  渠道 channels:           {', '.join(channel_lines(credentials)) or '—'}",
        f"  项目数据库 project db:   {project_db}",
        *(f"  {_pad(names.get(s.kind, s.kind) + ':', 25)}{s.where}" for s in stores),
        f"  模型 model:              {model.name}",
        f"  后台任务 worker:         {worker}",
    ]
    if extra:
        lines.append(extra)
    return "\n".join(["", *lines, "店小二已启动 ✅  Xiaoer is running."])


def log_sizes(logs: Path) -> dict[str, int]:
    """Where each log of ``logs`` ends now (they are appended to across runs)."""
    return {p.name: p.stat().st_size for p in logs.glob("*.log")}


def failed_check(logs: Path, since: dict[str, int] | None = None) -> str | None:
    """The start-up check a server's log in ``logs`` reports as failed (written after
    ``since``), if any."""
    lines: list[str] = []
    for path in sorted(logs.glob("*.log")):
        try:
            with path.open("rb") as handle:
                handle.seek((since or {}).get(path.name, 0))
                lines += handle.read().decode("utf-8", "replace").splitlines()
        except OSError:
            continue
    found = [line.split("start-up check failed: ", 1)[1] for line in lines
             if "start-up check failed: " in line]  # fmt: skip
    return found[-1] if found else None


def wait_logged(log: Path, since: int, marker: str, proc: Any, timeout: float) -> bool:
    """Wait until ``log`` (from byte ``since``) has a line with ``marker``; False when the
    process ``proc`` exits or ``timeout`` passes first."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with log.open("rb") as handle:
                handle.seek(since)
                if marker.encode() in handle.read():
                    return True
        except OSError:
            pass
        if proc.poll() is not None:
            return False
        time.sleep(0.2)
    return False

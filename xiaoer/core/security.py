"""Process hygiene shared by every process the project starts.

* ``umask 077``: files and folders are private to the service user from their first write
  (SQLite databases, logs, generated secrets);
* generated secrets (the Rasa HTTP API token, the action server's shared secret) are read
  from the environment or from a 0600 file in ``var/`` created at first start, never
  passed on a command line (visible to every local user in ``ps``);
* a start-up check warns clearly when ``var/`` or a file in it is readable by others;
* the phone/token masking log filter (xiaoer/core/logsafe.py).
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import stat
from pathlib import Path

from xiaoer.core import logsafe

logger = logging.getLogger("xiaoer.core.security")

API_TOKEN_ENV = "XIAOER_API_TOKEN"
ACTION_TOKEN_ENV = "XIAOER_ACTION_TOKEN"
ACTION_TOKEN_HEADER = "X-Xiaoer-Action-Token"


def private_umask() -> None:
    """New files 0600, new folders 0700 (for this process and its children)."""
    os.umask(0o077)


def private_dir(path: Path) -> Path:
    """Create ``path`` (0700) if needed and restrict it when it exists."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            path.chmod(0o700)
    except PermissionError:  # not ours: the start-up check reports it
        pass
    return path


def exposed_files(data_dir: Path) -> list[Path]:
    """``data_dir`` and the files/folders below it that group or others can access."""
    found: list[Path] = []
    if not data_dir.exists():
        return found
    for path in [data_dir, *sorted(data_dir.rglob("*"))]:
        try:
            if path.is_symlink():
                continue
            if stat.S_IMODE(path.stat().st_mode) & 0o077:
                found.append(path)
        except OSError:
            continue
    return found


def check_data_dir(data_dir: Path, log: logging.Logger | None = None) -> list[Path]:
    """Warn (log and return) when ``var/`` or its files are readable by other users."""
    exposed = exposed_files(data_dir)
    if exposed:
        names = ", ".join(str(p) for p in exposed[:10]) + (" …" if len(exposed) > 10 else "")
        (log or logger).warning(
            "SECURITY: %d path(s) under %s are accessible to other users of this machine "
            "(customer data, tokens): %s. Fix with: chmod -R go-rwx %s",
            len(exposed),
            data_dir,
            names,
            data_dir,
        )
    return exposed


def read_or_create_secret(path: Path) -> str:
    """The secret kept in ``path``; created (0600 from creation, never readable by others
    in between) when absent."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secrets.token_urlsafe(32))
    return path.read_text(encoding="utf-8").strip()


def secret(env: str, filename: str, data_dir: Path | None = None) -> str:
    """A secret from the environment variable ``env``, else from ``var/<filename>``."""
    value = os.environ.get(env)
    if value:
        return value
    if data_dir is None:
        from xiaoer.core.config import get_settings

        data_dir = get_settings().data_dir
    return read_or_create_secret(data_dir / filename)


def api_token(data_dir: Path | None = None) -> str:
    """The Rasa HTTP API token (console, notifier): $XIAOER_API_TOKEN or var/api_token."""
    return secret(API_TOKEN_ENV, "api_token", data_dir)


def action_token(data_dir: Path | None = None) -> str:
    """The action server's shared secret: $XIAOER_ACTION_TOKEN or var/action_token."""
    return secret(ACTION_TOKEN_ENV, "action_token", data_dir)


def same_secret(given: str | bytes | None, expected: str) -> bool:
    """Constant-time comparison that never raises (non-ASCII input is just wrong)."""
    if not given or not expected:
        return False
    if isinstance(given, str):
        given = given.encode("utf-8", "surrogateescape")
    return hmac.compare_digest(given, expected.encode("utf-8"))


MASKING_CHECK = "13800138000"


def log_level() -> int:
    """``$LOG_LEVEL`` (as Rasa reads it), INFO by default."""
    return logging.getLevelName(os.environ.get("LOG_LEVEL", "INFO").upper()) or logging.INFO


def masking_check(log: logging.Logger | None = None) -> None:
    """One line showing that this process's log masks phone numbers (the number is a
    fixed example, written masked when the filter is active)."""
    (log or logger).info("log masking active: %s is written masked", MASKING_CHECK)


def process_start(data_dir: Path | None = None, check: bool = True) -> None:
    """What every process the project starts does first (after configuring its logging):
    private umask, log masking, and the check of ``var/``'s permissions."""
    private_umask()
    logsafe.install()
    masking_check()
    if check:
        if data_dir is None:
            from xiaoer.core.config import get_settings

            data_dir = get_settings().data_dir
        check_data_dir(data_dir)

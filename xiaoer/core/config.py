"""Project settings loaded from ``xiaoer.yml`` (with environment overrides)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Settings:
    root: Path
    data_dir: Path
    backend_type: str
    backend_timeout: float
    # the demo shop's own SQLite file (``backend.sqlite.path``); None: the project database
    sqlite_path: Path | None
    shop: dict[str, Any] = field(default_factory=dict)
    doudian: dict[str, Any] = field(default_factory=dict)
    permissions: dict[str, bool] = field(default_factory=dict)
    # every top-level section of xiaoer.yml, for the services' own settings
    # (douyin, handoff, console, leads): read them with ``section(name)``
    raw: dict[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        value = self.raw.get(name)
        return value if isinstance(value, dict) else {}


def _config_path() -> Path:
    env = os.environ.get("XIAOER_CONFIG")
    return Path(env).resolve() if env else PROJECT_ROOT / "xiaoer.yml"


def load_settings(path: Path | None = None) -> Settings:
    path = path or _config_path()
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    root = path.parent
    data_dir = Path(os.environ.get("XIAOER_DATA_DIR") or raw.get("data_dir") or "var")
    if not data_dir.is_absolute():
        data_dir = root / data_dir
    backend = raw.get("backend") or {}
    configured = (backend.get("sqlite") or {}).get("path")
    sqlite_path = Path(configured) if configured else None
    if sqlite_path is not None and not sqlite_path.is_absolute():
        sqlite_path = data_dir / sqlite_path
    return Settings(
        root=root,
        data_dir=data_dir,
        backend_type=os.environ.get("XIAOER_BACKEND") or backend.get("type") or "sqlite",
        backend_timeout=float(backend.get("timeout_seconds") or 3.0),
        sqlite_path=sqlite_path,
        shop=raw.get("shop") or {},
        doudian=backend.get("doudian") or {},
        permissions={k: bool(v) for k, v in (raw.get("permissions") or {}).items()},
        raw=raw,
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def export_endpoint_defaults() -> None:
    """The variables the project's endpoints.yml reads, when the caller did not set them:
    the data folder (tracker store and event broker files; created, private, if missing)
    and the action server's port."""
    data_dir = get_settings().data_dir
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.environ.setdefault("XIAOER_DATA_DIR", str(data_dir))
    os.environ.setdefault("XIAOER_ACTIONS_PORT", "5055")

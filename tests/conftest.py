"""Shared fixtures. The trained model is built once per test run (scripts/test.sh trains it
with the real config and passes its path in XIAOER_TEST_MODEL); every suite uses it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _clear_caches() -> None:
    from actions import messages
    from xiaoer.core.config import get_settings
    from xiaoer.shop.factory import get_backend

    get_settings.cache_clear()
    get_backend.cache_clear()
    messages.catalogue.cache_clear()


@pytest.fixture()
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh data folder (demo shop seeded on first use) for one test."""
    monkeypatch.setenv("XIAOER_DATA_DIR", str(tmp_path / "var"))
    _clear_caches()
    yield tmp_path / "var"
    _clear_caches()


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's model, trained once per session on the real config."""
    given = os.environ.get("XIAOER_TEST_MODEL")
    if given:
        return Path(given)
    out = ROOT / "models"
    subprocess.run(
        [str(Path(sys.executable).with_name("rasa")), "train", "--out", str(out)],
        cwd=ROOT,
        check=True,
    )
    return max(out.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)

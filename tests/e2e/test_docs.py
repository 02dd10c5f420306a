"""The documentation's command blocks, run as written (docs/testing.md, "Docs that are
tested"): every block marked ``<!-- runnable -->`` in README.md and docs/*.md, in a
sandbox of the project with a fresh data folder, against a test stack on free ports."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from xiaoer.devtools.docs import Block, run_block, runnable_blocks, sandbox
from xiaoer.devtools.stack import Stack, running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.model]

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCKS = [b for path in DOCS for b in runnable_blocks(path)]
ADMIN_PASSWORD = "docs-test-pass-2026"


def test_the_docs_mark_their_runnable_blocks():
    names = {b.name for b in BLOCKS}
    assert {b.path.name for b in BLOCKS} >= {"README.md", "console.md", "database.md"}, names
    assert any("stack" in b.options for b in BLOCKS)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = sandbox(ROOT, tmp_path_factory.mktemp("docs") / "project")
    token = where / "var" / "api_token"
    token.write_text("docs-test-token")
    token.chmod(0o600)
    return where


@pytest.fixture(scope="module")
def stack(
    trained_model: Path, project: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with running_stack(
        trained_model,
        tmp_path_factory.mktemp("docs-stack"),
        token="docs-test-token",
        env_extra={"XIAOER_DATA_DIR": str(project / "var")},
    ) as s:
        yield s


def block_env(project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "XIAOER_CONFIG"}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(ROOT),
        XIAOER_DATA_DIR=str(project / "var"),
        XIAOER_ADMIN_PASSWORD=ADMIN_PASSWORD,
    )
    env.pop("XIAOER_API_TOKEN", None)  # the docs read var/api_token
    return env


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.name)
def test_runnable_block(block: Block, project: Path, request: pytest.FixtureRequest):
    env = block_env(project)
    replace: dict[str, str] = {}
    if "stack" in block.options:
        stack: Stack = request.getfixturevalue("stack")
        env["XIAOER_RASA_URL"] = stack.rasa_url
        address = stack.rasa_url.removeprefix("http://")
        replace = {"localhost:5005": address, "127.0.0.1:5005": address}
    outcome = run_block(block, project, env, replace=replace)
    assert outcome.returncode == 0, f"{block.name} failed:\n{block.code}\n{outcome.output}"
    assert (
        not outcome.missing
    ), f"{block.name}: promised output missing {outcome.missing}\n{outcome.output}"

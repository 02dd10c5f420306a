"""`rasa test` on the conversation tests, with the session's model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.model


@pytest.mark.parametrize("stories", ["test_stories.yml", "test_stories_answers.yml"])
def test_conversation_stories_have_no_prediction_errors(
    trained_model: Path, tmp_path: Path, stories: str
):
    out = tmp_path / "results"
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("rasa")),
            "test",
            "core",
            "--model",
            str(trained_model),
            "--stories",
            str(ROOT / "tests" / stories),
            "--out",
            str(out),
            "--fail-on-prediction-errors",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    failed = out / "failed_test_stories.yml"
    details = failed.read_text(encoding="utf-8") if failed.exists() else result.stdout[-4000:]
    assert result.returncode == 0, details + result.stderr[-3000:]
    assert "None of the test stories failed" in details or not details.strip().count(
        "story:"
    ), details

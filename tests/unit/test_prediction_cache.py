"""The cache of TED's predictions changes no decision: Rasa's test stories get the same
predicted actions, by the same policies, with the same confidences, with and without it.
(The blind conversations through a whole stack: tests/e2e/test_prediction_cache_blind.py.)"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from xiaoer.plugins import prediction_cache

pytestmark = pytest.mark.model

ROOT = Path(__file__).resolve().parents[2]
STORIES = sorted((ROOT / "tests").glob("test_stories*.yml"))


@pytest.fixture(scope="module")
def agent(trained_model: Path) -> Iterator[object]:
    from rasa.core.agent import load_agent

    # installed before the model loads, as the server does (Rasa's graph keeps the method
    # it found then); switched off and on below
    prediction_cache.install_prediction_cache()
    yield asyncio.run(load_agent(model_path=str(trained_model)))
    prediction_cache.uninstall_prediction_cache()


def _predictions(agent: object, stories: Path, out: Path) -> Counter[tuple]:
    """Every step of every test story: the story's action, the predicted one, the policy
    that won and its confidence (as a multiset: Rasa does not keep the stories' order)."""
    from rasa.core.test import test

    out.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(test(str(stories), agent, out_directory=str(out)))  # type: ignore[arg-type]
    return Counter(
        tuple(a.get(k) for k in ("action", "predicted", "policy", "confidence"))
        for a in result["actions"]
    )


@pytest.mark.parametrize("stories", STORIES, ids=[p.name for p in STORIES])
def test_test_stories_choose_the_same_actions_with_the_cache(
    agent: object, stories: Path, tmp_path: Path
) -> None:
    prediction_cache.uninstall_prediction_cache()
    without = _predictions(agent, stories, tmp_path / "without")
    assert prediction_cache.install_prediction_cache()
    before = dict(prediction_cache.stats)
    try:
        first = _predictions(agent, stories, tmp_path / "first")  # fills the cache
        again = _predictions(agent, stories, tmp_path / "again")  # answered from it
    finally:
        prediction_cache.uninstall_prediction_cache()
    assert without, "no predictions: the stories were not read"
    assert first == without
    assert again == without
    hits = prediction_cache.stats["hits"] - before["hits"]
    assert hits >= sum(without.values())  # the second pass never ran TED for a state it had seen

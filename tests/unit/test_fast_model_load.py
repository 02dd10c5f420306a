"""Loading the model without Rasa's one training step (xiaoer/plugins/speed.py) gives the
same model: the same intent ranking and the same action scores, to the last digit."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Any

import pytest
from rasa.utils.tensorflow.models import RasaModel

from xiaoer.plugins import speed

pytestmark = [pytest.mark.model]

TEXTS = ["你好", "运费险有吗", "T恤多少钱", "帮我查下订单 6938271045123400002 到哪了", "谢谢",
         "我要退货", "能便宜点吗", "发什么快递"]  # fmt: skip


def _answers(model: Path) -> list[dict[str, Any]]:
    from rasa.core.agent import Agent
    from rasa.shared.core.constants import ACTION_LISTEN_NAME
    from rasa.shared.core.events import ActionExecuted, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    agent = Agent.load(str(model))

    async def run(agent: Any) -> list[dict[str, Any]]:
        out = []
        for text in TEXTS:
            parse = await agent.parse_message(text)
            tracker = DialogueStateTracker.from_events(
                "t", [ActionExecuted(ACTION_LISTEN_NAME),
                      UserUttered(text, parse["intent"], parse["entities"], parse)],
                slots=agent.domain.slots,
            )  # fmt: skip
            prediction = agent.processor.predict_next_with_tracker(tracker)
            out.append({"ranking": parse["intent_ranking"], "scores": prediction["scores"]})
        return out

    try:
        return asyncio.run(run(agent))
    finally:
        del agent
        gc.collect()


def test_fast_load_predicts_exactly_as_rasa(
    trained_model: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stock = _answers(trained_model)
    # the classmethod itself, restored after the test
    monkeypatch.setattr(RasaModel, "load", RasaModel.__dict__["load"])
    speed.install_fast_model_load()
    assert RasaModel.load.__func__.__module__ == speed.__name__
    fast = _answers(trained_model)
    assert fast == stock
    assert fast[0]["ranking"][0]["name"] == "greet"

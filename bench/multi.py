"""Several questions in one message: how many messages get every question answered.

Reads bench/data/multi_questions.yml (30 messages with the intents they ask, in order)
and, with a trained model, compares:

* ``whole``: the message parsed as one (one intent: at most one question answered);
* ``split``: clause splitting before NLU (xiaoer/nlu/multi.py): each request parsed;
* ``multi``: Rasa multi-intents (a model trained with ``intent_tokenization_flag`` and
  ``ask_price+ask_shipping`` style intents): the predicted intent split on "+".

A message passes when the intents found contain the expected ones in order, with no
fallback. Also prints the recall of expected intents and the parse time per message.

    .venv/bin/python bench/multi.py --model models/xxx.tar.gz [--design whole split multi]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")

import yaml  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "bench" / "data" / "multi_questions.yml"


def is_subsequence(expected: list[str], found: list[str]) -> bool:
    it = iter(found)
    return all(any(f == e for f in it) for e in expected)


def matched(expected: list[str], found: list[str]) -> int:
    """How many expected intents are found, in order (greedy)."""
    count, position = 0, 0
    for e in expected:
        if e in found[position:]:
            position = found.index(e, position) + 1
            count += 1
    return count


async def run(model: str, designs: list[str]) -> int:
    from rasa.core.agent import Agent

    from xiaoer.nlu.multi import split_requests

    agent = Agent.load(model)
    cases = yaml.safe_load(CASES.read_text(encoding="utf-8"))
    for case in cases[:5]:  # warm-up (segmenter and model loading)
        await agent.parse_message(case["text"])
    for design in designs:
        passed, recall, times, failures = 0, [], [], []
        for case in cases:
            text, expected = " ".join(case["text"].split()), case["intents"]
            started = time.perf_counter()
            if design == "split":
                parts = await split_requests(text, agent.parse_message)
                intents = [(await agent.parse_message(p))["intent"]["name"] for p in parts]
            else:
                name = (await agent.parse_message(text))["intent"]["name"]
                intents = name.split("+") if design == "multi" else [name]
            times.append((time.perf_counter() - started) * 1000)
            ok = is_subsequence(expected, intents) and "nlu_fallback" not in intents
            passed += ok
            recall.append(matched(expected, intents) / len(expected))
            if not ok:
                failures.append(f"   ✗ {text[:40]!r}: {expected} -> {intents}")
        print(f"\n== {design}: {passed}/{len(cases)} messages fully answered")
        print(f"expected intents found in order  {statistics.mean(recall):.3f}")
        print(f"time per message  p50 {statistics.median(times):.1f} ms  max {max(times):.1f} ms")
        print("\n".join(failures))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--design", nargs="+", default=["whole", "split"])
    args = parser.parse_args()
    return asyncio.run(run(args.model, args.design))


if __name__ == "__main__":
    sys.exit(main())

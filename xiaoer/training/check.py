"""Checking a newly trained model before it goes live: it loads, and it answers a few probe
messages as expected (messages of existing intents, one knowledge-base question).

``python -m xiaoer.training.check MODEL`` reads the probes (JSON ``[{"text", "intent",
"response_key"}]``) on stdin and prints what the model said (JSON) on stdout; the worker
runs it as a child process, so the model's memory is given back at once.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from xiaoer.core.config import PROJECT_ROOT
from xiaoer.knowledge.answers import response_key
from xiaoer.knowledge.collisions import intent_examples
from xiaoer.knowledge.store import KnowledgeStore, get_knowledge_store
from xiaoer.knowledge.training_data import intents_of

# existing intents every model must keep answering (an example of each from data/nlu)
PROBE_INTENTS = ("greet", "order_status", "return_policy", "request_human")


@dataclass(frozen=True)
class Probe:
    text: str
    intent: str
    response_key: str = ""  # for a knowledge-base question: faq/kb<id>


def probes(store: KnowledgeStore | None = None) -> list[Probe]:
    """A training example of a few existing intents, and the question of the most recently
    changed enabled entry."""
    out: list[Probe] = []
    wanted = set(PROBE_INTENTS)
    for intent, example in intent_examples().values():
        if intent in wanted:
            out.append(Probe(example, intent))
            wanted.discard(intent)
    entries = (store or get_knowledge_store()).all(enabled_only=True)
    if entries:
        latest = max(entries, key=lambda e: (e.updated_at, e.id or 0))
        for key, examples in intents_of(entries).items():
            if latest.examples()[0] in examples or key == latest.intent:
                out.append(Probe(latest.examples()[0], "faq", key))
                break
    return out


def failures(probes: list[Probe], answers: list[dict[str, Any]]) -> list[str]:
    """What the model got wrong, in words for the console."""
    wrong = []
    for probe, parsed in zip(probes, answers, strict=False):
        intent = (parsed.get("intent") or {}).get("name")
        if intent != probe.intent:
            wrong.append(f"「{probe.text}」应识别为 {probe.intent}，实际为 {intent}")
        elif probe.response_key and response_key(parsed) != probe.response_key:
            wrong.append(
                f"「{probe.text}」应选中知识库条目 {probe.response_key}，实际为 {response_key(parsed)}"
            )
    return wrong


def check_model(model: Path, probe_list: list[Probe], timeout: float = 600) -> list[str]:
    """Load ``model`` in a child process and parse the probes: the problems found (an
    empty list: the model passes)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore",
           "RASA_TELEMETRY_ENABLED": "false", "SQLALCHEMY_SILENCE_UBER_WARNING": "1"}  # fmt: skip
    try:
        done = subprocess.run(
            [sys.executable, "-m", "xiaoer.training.check", str(model)],
            input=json.dumps([asdict(p) for p in probe_list], ensure_ascii=False),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=PROJECT_ROOT,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return [f"加载新模型超时（{timeout:.0f} 秒）"]
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        return [f"新模型无法加载：{tail}"]
    answers = json.loads(done.stdout.strip().splitlines()[-1])
    return failures(probe_list, answers)


async def parse_probes(agent: Any, texts: list[str]) -> list[dict[str, Any]]:
    """What ``agent``'s model itself understands of ``texts`` (text, intent, response
    selector): the knowledge base's run-time matcher leaves these messages alone
    (``MODEL_CHECK_FLAG``). The server's try-out (xiaoer/servers/modelsync.py) and the
    child process below both use it."""
    from rasa.core.channels.channel import UserMessage

    from xiaoer.core.rasa_api import MODEL_CHECK_FLAG

    answers = []
    for text in texts:
        parsed = await agent.processor.parse_message(
            UserMessage(text, metadata={MODEL_CHECK_FLAG: True})
        )
        answers.append({k: parsed.get(k) for k in ("text", "intent", "response_selector")})
    return answers


async def _parse_all(model: str, texts: list[str]) -> list[dict[str, Any]]:
    from rasa.core.agent import Agent

    return await parse_probes(Agent.load(model), texts)


def main() -> int:
    from xiaoer.core import quiet

    quiet.install()
    items = json.loads(sys.stdin.read() or "[]")
    answers = asyncio.run(_parse_all(sys.argv[1], [i["text"] for i in items]))
    print(json.dumps(answers, ensure_ascii=False, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

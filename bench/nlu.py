"""NLU benchmark: the project's pipeline against a stock Rasa JiebaTokenizer pipeline.

Trains both on data/ (NLU only), evaluates on the held-out set tests/nlu/heldout.yml and
prints intent accuracy, macro-F1, the 5 worst intents, training time, parse latency and
the cost of the text normalisation alone (xiaoer.text.normalize.normalize_message).

    .venv/bin/python bench/nlu.py [--only project|jieba] [--json results.json]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")

import yaml  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HELDOUT = ROOT / "tests" / "nlu" / "heldout.yml"
HELDOUT_PATH = [HELDOUT]  # --heldout replaces it (e.g. bench/data/nlu_patterns.yml)


def pipelines() -> dict[str, list[dict]]:
    config = yaml.safe_load((ROOT / "config.yml").read_text(encoding="utf-8"))
    project = config["pipeline"]
    jieba = copy.deepcopy(project)
    jieba[0] = {"name": "JiebaTokenizer"}
    return {"project": project, "jieba": jieba}


def load_heldout() -> list[tuple[str, str]]:
    from rasa.shared.nlu.training_data.loading import load_data

    data = load_data(str(HELDOUT_PATH[0]))
    return [(m.get("text"), m.get("intent")) for m in data.intent_examples]


def metrics(pairs: list[tuple[str, str]]) -> dict:
    """pairs: (gold, predicted)."""
    labels = sorted({g for g, _ in pairs})
    f1s = {}
    for label in labels:
        tp = sum(1 for g, p in pairs if g == label and p == label)
        fp = sum(1 for g, p in pairs if g != label and p == label)
        fn = sum(1 for g, p in pairs if g == label and p != label)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1s[label] = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    accuracy = sum(1 for g, p in pairs if g == p) / len(pairs)
    worst = sorted(f1s.items(), key=lambda kv: kv[1])[:5]
    return {"accuracy": accuracy, "macro_f1": statistics.mean(f1s.values()), "worst": worst}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def evaluate(
    name: str, pipeline: list[dict], workdir: Path, model: Path | None = None
) -> dict:
    from rasa.model_training import train_nlu

    if model is not None:  # an already trained model (e.g. models/…): latency and accuracy only
        return await measure(name, str(model), train_seconds=float("nan"))

    config_path = workdir / f"config_{name}.yml"
    config_path.write_text(
        yaml.safe_dump(
            {"recipe": "default.v1", "language": "zh", "pipeline": pipeline, "policies": []},
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    started = time.perf_counter()
    model = train_nlu(
        str(config_path), str(ROOT / "data" / "nlu"), str(workdir), fixed_model_name=name
    )
    train_seconds = time.perf_counter() - started
    return await measure(name, model, train_seconds)


async def measure(name: str, model: str, train_seconds: float, rounds: int = 3) -> dict:
    from rasa.core.agent import Agent

    started = time.perf_counter()
    agent = Agent.load(model)
    load_seconds = time.perf_counter() - started

    heldout = load_heldout()
    for text, _ in heldout[:20]:  # warm-up
        await agent.parse_message(text)
    pairs, latencies, errors = [], [], []
    fallbacks = 0
    for _ in range(rounds - 1):  # extra rounds for stable latency percentiles
        for text, _gold in heldout:
            t0 = time.perf_counter()
            await agent.parse_message(text)
            latencies.append((time.perf_counter() - t0) * 1000)
    for text, gold in heldout:
        t0 = time.perf_counter()
        parsed = await agent.parse_message(text)
        latencies.append((time.perf_counter() - t0) * 1000)
        # the fallback threshold is a dialogue matter: score the best real intent
        ranking = [r for r in parsed.get("intent_ranking") or [] if r["name"] != "nlu_fallback"]
        predicted = ranking[0]["name"] if ranking else parsed["intent"]["name"]
        if parsed["intent"]["name"] == "nlu_fallback":
            fallbacks += 1
        pairs.append((gold, predicted))
        if predicted != gold:
            errors.append((text, gold, predicted))
    from xiaoer.text.normalize import normalize, normalize_message

    normalize.cache_clear()
    normalize_message.cache_clear()
    t0 = time.perf_counter()
    for text, _gold in heldout:
        normalize_message(text)
    normalise_ms = (time.perf_counter() - t0) * 1000 / len(heldout)
    result = {
        "pipeline": name,
        "normalise_ms": round(normalise_ms, 3),
        "examples": len(heldout),
        "parses_timed": len(latencies),
        **metrics(pairs),
        "train_seconds": round(train_seconds, 1),
        "load_seconds": round(load_seconds, 1),
        "fallback_rate": round(fallbacks / len(heldout), 3),
        "parse_ms_p50": round(percentile(latencies, 50), 2),
        "parse_ms_p99": round(percentile(latencies, 99), 2),
        "errors": errors,
    }
    return result


def report(result: dict, show_errors: bool) -> None:
    print(f"\n== {result['pipeline']} pipeline ({result['examples']} held-out messages)")
    print(f"intent accuracy   {result['accuracy']:.3f}")
    print(f"macro-F1          {result['macro_f1']:.3f}")
    print("worst 5 intents   " + ", ".join(f"{k} {v:.2f}" for k, v in result["worst"]))
    print(
        f"fallback rate     {result['fallback_rate']:.3f} (below the FallbackClassifier threshold)"
    )
    print(
        f"training          {result['train_seconds']} s   (model load {result['load_seconds']} s)"
    )
    print(
        f"parse latency     p50 {result['parse_ms_p50']} ms   p99 {result['parse_ms_p99']} ms"
        f"   ({result['parses_timed']} parses)"
    )
    print(f"normalisation     {result['normalise_ms']} ms per message (uncached)")
    if show_errors:
        for text, gold, predicted in result["errors"]:
            print(f"   ✗ {text!r}: {gold} -> {predicted}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=["project", "jieba"])
    parser.add_argument("--errors", action="store_true", help="list misclassified messages")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--project-model", type=Path, help="use this trained model for the project pipeline"
    )
    parser.add_argument(
        "--heldout", type=Path, help="evaluation set (default: tests/nlu/heldout.yml)"
    )
    args = parser.parse_args()
    if args.heldout:
        HELDOUT_PATH[0] = args.heldout
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, pipeline in pipelines().items():
            if args.only and name != args.only:
                continue
            given = args.project_model if name == "project" else None
            result = asyncio.run(evaluate(name, pipeline, Path(tmp), given))
            report(result, args.errors)
            results.append(result)
    if args.json:
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""pkuseg's model loaded once before the Rasa server forks its workers: the workers share
it (their own memory stays small) and segment exactly as a segmenter of their own would."""

from __future__ import annotations

import multiprocessing
import os

import pytest
import yaml

from xiaoer.nlu import tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TERMS = ("运费险", "T恤", "冰丝", "直播间")


def _texts() -> list[str]:
    path = os.path.join(ROOT, "bench", "data", "blind", "messages.yml")
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            text = node.get("text")
            if isinstance(text, str):
                found.append(text)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(data)
    return found


def _private_mb() -> int:
    with open("/proc/self/smaps_rollup", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("Private_Dirty:"):
                return int(line.split()[1]) // 1024
    raise AssertionError("no Private_Dirty in smaps_rollup")


def _worker(texts: list[str], out: multiprocessing.Queue) -> None:
    before = _private_mb()
    segmenter = tokenizer.get_segmenter(TERMS)  # as a worker's tokenizer does
    cuts = [segmenter.cut(t) for t in texts * 2]
    out.put((_private_mb() - before, cuts[: len(texts)]))


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps_rollup"), reason="Linux only")
def test_forked_workers_share_pkuseg_and_segment_the_same() -> None:
    import pkuseg

    texts = _texts()
    assert len(texts) > 100
    own = pkuseg.pkuseg(model_name="default", user_dict=list(TERMS))  # a worker's own copy
    expected = [own.cut(t) for t in texts]
    del own
    tokenizer.share_segmenter_model()
    ctx = multiprocessing.get_context("fork")  # Sanic forks its workers the same way
    out: multiprocessing.Queue = ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(texts, out)) for _ in range(2)]
    for w in workers:
        w.start()
    results = [out.get(timeout=300) for _ in workers]
    for w in workers:
        w.join(timeout=60)
    for grown_mb, cuts in results:
        assert cuts == expected  # the same words as an unshared segmenter
        # not another copy of the ~800 MB model: a shared worker grows by the pages its
        # reference counts touch (100-180 MB measured, more when the forking process holds
        # more, as in the whole suite)
        assert grown_mb < 400
    shared = tokenizer.get_segmenter(("另一个词典",))
    assert shared.feature_extractor is tokenizer.get_segmenter(TERMS).feature_extractor

"""Retraining runs and the hot swap's logic (the real servers: tests/e2e/test_knowledge_e2e.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from xiaoer.training import runner, swap
from xiaoer.training.check import Probe, failures
from xiaoer.training.store import TrainingRunStore


@pytest.fixture()
def runs(project_db: Any, data_dir: Path) -> TrainingRunStore:
    return TrainingRunStore(project_db)


def test_requests_coalesce_into_the_queued_run_and_one_worker_claims_it(
    runs: TrainingRunStore,
) -> None:
    first = runs.request("boss", "导入 kb.xlsx")
    assert runs.request("inbox", "新例句") == first  # still queued: one retrain for both
    assert runs.claim() == first
    assert runs.claim() is None  # nobody else gets it
    run = runs.get(first)
    assert run is not None and run["state"] == "training" and run["state_label"] == "训练中"
    assert runs.request("boss", "又改了") != first  # a change during training: a new run


def test_a_run_left_by_a_dead_worker_is_failed(runs: TrainingRunStore) -> None:
    run_id = runs.request("boss", "x")
    runs.claim()
    assert runs.fail_orphans(older_than=600) == 0
    runs.update(run_id, progress="训练中")
    from xiaoer.training.store import training_runs

    with runs.db.begin() as conn:
        conn.execute(training_runs.update().values(heartbeat_at=time.time() - 3600))
    assert runs.fail_orphans(older_than=600) == 1
    run = runs.get(run_id)
    assert run is not None and run["state"] == "failed" and "中断" in run["error"]


def test_wait_live_returns_the_finished_run_and_times_out_otherwise(
    runs: TrainingRunStore,
) -> None:
    from xiaoer.training import wait_live

    run_id = runs.request("boss", "x")
    with pytest.raises(TimeoutError):
        wait_live(run_id, timeout=0.3, poll=0.1)
    runs.update(run_id, state="live", progress="新模型已上线")
    assert wait_live(run_id, timeout=1)["state"] == "live"


class FakeServers:
    """Rasa servers as the swap sees them: which model each has, what it answers."""

    def __init__(self, urls: list[str], model: str, broken: set[str] = frozenset()) -> None:
        self.models = {u: model for u in urls}
        self.broken = broken  # servers answering the probes wrongly with a new model
        self.calls: list[tuple[str, str]] = []
        self.original = model
        self.timeout = 5.0

    def status(self, url: str) -> dict[str, Any]:
        return {"model_file": Path(self.models[url]).name}

    def load(self, url: str, model: Path | str) -> None:
        self.calls.append((url, Path(model).name))
        self.models[url] = str(model)

    def wait_every_worker(self, url: str, model: str, timeout: float) -> None:
        if Path(self.models[url]).name != model:
            raise swap.SwapError(f"{url} 仍在使用旧模型")

    def try_model(self, url: str, model: Path | str, texts: list[str]) -> list[dict[str, Any]]:
        self.calls.append((url, f"tried {Path(model).name}"))
        return [self.answer(url, True, text) for text in texts]

    def parse(self, url: str, text: str) -> dict[str, Any]:
        return self.answer(url, self.models[url] != self.original, text)

    def answer(self, url: str, new: bool, text: str) -> dict[str, Any]:
        if new and url in self.broken:
            return {"intent": {"name": "nlu_fallback"}}
        if text == "可以货到付款吗":
            return {
                "intent": {"name": "faq"},
                "response_selector": {"faq": {"response": {"intent_response_key": "faq/kb1"}}},
            }
        return {"intent": {"name": "greet"}}


PROBES = [Probe("你好", "greet"), Probe("可以货到付款吗", "faq", "faq/kb1")]


def test_swap_changes_every_server_one_after_another(tmp_path: Path) -> None:
    old, new = tmp_path / "old.tar.gz", tmp_path / "new.tar.gz"
    old.write_bytes(b"old")
    new.write_bytes(b"new")
    servers = FakeServers(["http://a", "http://b"], str(old))
    checked = []
    result = swap.swap_all(new, PROBES, servers=["http://a", "http://b"], api=servers,  # type: ignore[arg-type]
                           checked=lambda: checked.append(1))  # fmt: skip
    assert result.ok and checked == [1]
    # each server tries the model out before it answers customers with it
    assert servers.calls == [
        ("http://a", "tried new.tar.gz"), ("http://a", "new.tar.gz"),
        ("http://b", "tried new.tar.gz"), ("http://b", "new.tar.gz"),
    ]  # fmt: skip
    assert {Path(m).name for m in servers.models.values()} == {"new.tar.gz"}


def test_a_server_failing_its_checks_rolls_every_server_back(tmp_path: Path) -> None:
    old, new = tmp_path / "old.tar.gz", tmp_path / "new.tar.gz"
    old.write_bytes(b"old")
    new.write_bytes(b"new")
    servers = FakeServers(["http://a", "http://b", "http://c"], str(old), broken={"http://b"})
    result = swap.swap_all(new, PROBES, servers=list(servers.models), api=servers)  # type: ignore[arg-type]
    assert not result.ok and result.rolled_back and result.live_changed
    assert "http://b" in result.error and "nlu_fallback" in result.error
    assert result.problems == ["「你好」应识别为 greet，实际为 nlu_fallback",
                               "「可以货到付款吗」应识别为 faq，实际为 nlu_fallback"]  # fmt: skip
    # a went back to the old model; b failed its try-out and never answered with the new
    # one; c was never touched
    assert {u: Path(m).name for u, m in servers.models.items()} == {
        "http://a": "old.tar.gz", "http://b": "old.tar.gz", "http://c": "old.tar.gz",
    }  # fmt: skip
    assert ("http://b", "new.tar.gz") not in servers.calls
    assert not [c for c in servers.calls if c[0] == "http://c"]


def test_a_model_failing_its_try_out_on_the_first_server_changes_nothing(
    tmp_path: Path,
) -> None:
    old, new = tmp_path / "old.tar.gz", tmp_path / "new.tar.gz"
    old.write_bytes(b"old")
    new.write_bytes(b"new")
    servers = FakeServers(["http://a", "http://b"], str(old), broken={"http://a"})
    checked = []
    result = swap.swap_all(new, PROBES, servers=list(servers.models), api=servers,  # type: ignore[arg-type]
                           checked=lambda: checked.append(1))  # fmt: skip
    assert not result.ok and not result.live_changed and not result.rolled_back
    assert "「你好」应识别为 greet" in result.problems[0]
    assert servers.calls == [("http://a", "tried new.tar.gz")] and checked == []
    assert {Path(m).name for m in servers.models.values()} == {"old.tar.gz"}


def test_a_server_without_the_try_out_route_is_checked_in_a_child_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain ``rasa run`` (no /xiaoer/models/candidate): the model is checked once in a
    child process, for every such server."""
    old, new = tmp_path / "old.tar.gz", tmp_path / "new.tar.gz"
    old.write_bytes(b"old")
    new.write_bytes(b"new")
    servers = FakeServers(["http://a", "http://b"], str(old))
    servers.try_model = lambda *a: None  # type: ignore[method-assign,assignment]
    children: list[str] = []

    def check_model(model: Path, probes: list[Probe]) -> list[str]:
        children.append(model.name)
        return []

    monkeypatch.setattr(swap.check, "check_model", check_model)
    result = swap.swap_all(new, PROBES, servers=list(servers.models), api=servers)  # type: ignore[arg-type]
    assert result.ok and children == ["new.tar.gz"]
    monkeypatch.setattr(
        swap.check, "check_model", lambda m, p: ["「你好」应识别为 greet，实际为 faq"]
    )
    result = swap.swap_all(old, PROBES, servers=list(servers.models), api=servers)  # type: ignore[arg-type]
    assert not result.ok and not result.live_changed and "你好" in result.problems[0]


def test_probe_failures_are_told_in_words() -> None:
    wrong = failures(PROBES, [{"intent": {"name": "greet"}}, {"intent": {"name": "greet"}}])
    assert wrong == ["「可以货到付款吗」应识别为 faq，实际为 greet"]


def test_a_run_goes_live_or_fails_visibly(
    runs: TrainingRunStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "m.tar.gz"
    model.write_bytes(b"model")

    def fake_train(name: str, progress: Any, **kw: Any) -> Any:
        progress("训练中：意图识别 50%", 50)
        return runner.trainer.Trained(model, 1.0, 3)

    monkeypatch.setattr(runner.trainer, "train", fake_train)
    monkeypatch.setattr(runner.swap, "swap_all", lambda *a, **k: swap.SwapResult(True, []))
    run_id = runs.request("boss", "x")
    assert runner.run_next(runs) == run_id
    run = runs.get(run_id)
    assert run is not None and (run["state"], run["percent"], run["model"]) == (
        "live",
        100,
        str(model),
    )

    # the first server's try-out fails: the run failed, nothing was rolled back
    failed = swap.SwapResult(False, [swap.ServerState("http://a")], "http://a 新模型未通过检查",
                             problems=["「你好」应识别为 greet，实际为 faq"])  # fmt: skip
    monkeypatch.setattr(runner.swap, "swap_all", lambda *a, **k: failed)
    run_id = runs.request("boss", "y")
    runner.run_next(runs)
    run = runs.get(run_id)
    assert run is not None and run["state"] == "failed" and "你好" in run["error"]
    assert run["progress"] == "检查未通过，线上模型未变"

    # a later server fails: the ones changed went back
    back = swap.SwapResult(False, [swap.ServerState("http://a")], "http://b 无法连接",
                           rolled_back=True, live_changed=True)  # fmt: skip
    monkeypatch.setattr(runner.swap, "swap_all", lambda *a, **k: back)
    run_id = runs.request("boss", "w")
    runner.run_next(runs)
    run = runs.get(run_id)
    assert run is not None and run["state"] == "rolled_back" and "http://b" in run["error"]

    def broken_train(name: str, progress: Any, **kw: Any) -> Any:
        raise runner.trainer.TrainingError("训练失败：YAML 格式错误")

    monkeypatch.setattr(runner.trainer, "train", broken_train)
    run_id = runs.request("boss", "z")
    runner.run_next(runs)
    run = runs.get(run_id)
    assert run is not None and run["state"] == "failed" and "YAML" in run["error"]


FAKE_RASA = """
import sys, pathlib
args = sys.argv[1:]
out = pathlib.Path(args[args.index("--out") + 1])
name = args[args.index("--fixed-model-name") + 1]
print("INFO rasa.engine.training.hooks  - Starting to train component 'DIETClassifier'.", flush=True)
sys.stdout.write("Epochs:  50%|#####     | 1/2\\rEpochs: 100%|##########| 2/2\\n")
print("INFO rasa.engine.training.hooks  - Starting to train component 'ResponseSelector'.")
(out / (name + ".tar.gz")).write_bytes(b"model")
print(f"Your Rasa model is trained and saved at '{out / name}.tar.gz'.")
"""


def test_training_reports_progress_and_returns_the_model(
    project_db: Any, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``rasa train`` as a child process: its components and epochs become the progress;
    the model it saved is returned (a fake ``rasa`` script stands in for Rasa here)."""
    import sys

    from xiaoer.knowledge.store import KnowledgeStore
    from xiaoer.training import trainer

    script = tmp_path / "fake_rasa.py"
    script.write_text(FAKE_RASA)
    monkeypatch.setattr(trainer, "models_dir", lambda: tmp_path / "models")
    monkeypatch.setattr(
        trainer, "rasa_train_args",
        lambda inputs, out, name, **kw: [sys.executable, str(script), "--out", str(out),
                                   "--fixed-model-name", name],
    )  # fmt: skip
    heard: list[tuple[str, int]] = []
    trained = trainer.train(
        "run7", lambda text, p: heard.append((text, p)), store=KnowledgeStore(project_db)
    )
    assert trained.model == tmp_path / "models" / "run7.tar.gz" and trained.model.exists()
    assert ("训练中：意图识别 50%", 50) in heard and ("训练中：意图识别 100%", 100) in heard
    assert ("训练中：知识库问答", 0) in heard and heard[-1] == ("训练完成", 100)


def test_a_failed_training_says_why(
    project_db: Any, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from xiaoer.knowledge.store import KnowledgeStore
    from xiaoer.training import trainer

    monkeypatch.setattr(trainer, "models_dir", lambda: tmp_path / "models")
    monkeypatch.setattr(
        trainer, "rasa_train_args",
        lambda inputs, out, name, **kw: [sys.executable, "-c",
                                   "print('InvalidDomain: duplicate intent'); raise SystemExit(1)"],
    )  # fmt: skip
    with pytest.raises(trainer.TrainingError, match="InvalidDomain: duplicate intent"):
        trainer.train("run8", store=KnowledgeStore(project_db))


class Workers(swap.ModelApi):
    """A server of two Sanic workers as ``GET /xiaoer/models`` reports them: the worker
    that took ``PUT /model`` has the new model, the other follows a few polls later."""

    def __init__(self, follows_after: int, error: str = "") -> None:
        super().__init__(token="t")
        self.polls = 0
        self.follows_after = follows_after
        self.error = error

    def workers(self, url: str) -> dict[str, Any] | None:
        self.polls += 1
        late = "new.tar.gz" if self.polls > self.follows_after else "old.tar.gz"
        return {
            "expected_workers": 2,
            "workers": [{"pid": 1, "model": "new.tar.gz", "error": ""},
                        {"pid": 2, "model": late, "error": self.error}],
        }  # fmt: skip


def test_the_swap_waits_until_every_worker_answers_with_the_new_model() -> None:
    api = Workers(follows_after=3)
    api.wait_every_worker("http://a", "new.tar.gz", timeout=30, poll=0.01)
    assert api.polls == 4  # returned only once the second worker had it too
    with pytest.raises(swap.SwapError, match="1 个未切换"):
        Workers(follows_after=10**6).wait_every_worker("http://a", "new.tar.gz", 0.05, 0.01)
    with pytest.raises(swap.SwapError, match="加载新模型失败"):
        Workers(follows_after=10**6, error="new.tar.gz: OSError").wait_every_worker(
            "http://a", "new.tar.gz", 30, 0.01
        )


def test_workers_of_one_server_share_the_wanted_model_and_report_theirs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from xiaoer.servers import modelsync

    monkeypatch.setenv("XIAOER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(modelsync.SERVER_ID_ENV, "5005-1")
    monkeypatch.setenv("SANIC_WORKERS", "2")
    modelsync.record_wanted("/models/new.tar.gz")
    modelsync.report("old.tar.gz")
    dead = tmp_path / "run" / "rasa-5005-1" / "worker-999999999.json"
    dead.write_text('{"pid": 999999999, "model": "old.tar.gz", "error": ""}')
    seen = modelsync.snapshot()
    assert seen["wanted"] == "new.tar.gz" and seen["expected_workers"] == 2
    # a dead process's report is not counted
    assert seen["workers"] == [{"pid": os.getpid(), "model": "old.tar.gz", "error": ""}]
    monkeypatch.setenv(modelsync.SERVER_ID_ENV, "5006-2")  # another server on the machine
    assert modelsync.snapshot()["wanted"] is None


def test_a_tried_model_is_put_live_once_and_let_go_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent a server tried out is the one ``PUT /model`` puts live (no second load),
    for that model file only; any other load, or 5 minutes, lets it go."""
    from xiaoer.servers import modelsync

    new, other = tmp_path / "new.tar.gz", tmp_path / "other.tar.gz"
    new.write_bytes(b"new")
    other.write_bytes(b"other")
    agent = object()
    modelsync.hold_candidate(str(new), agent)
    assert modelsync.take_candidate(str(tmp_path / "." / "new.tar.gz")) is agent  # same file
    assert modelsync.take_candidate(str(new)) is None  # taken once
    modelsync.hold_candidate(str(new), agent)
    assert modelsync.take_candidate(str(other)) is None  # another model: loaded, and
    assert modelsync.take_candidate(str(new)) is None  # the tried one let go
    modelsync.hold_candidate(str(new), agent)
    now = time.monotonic()
    monkeypatch.setattr(modelsync.time, "monotonic", lambda: now + modelsync.CANDIDATE_SECONDS + 1)
    modelsync.release_stale_candidate()  # the workers' watch, once a second
    assert modelsync._candidate == {}


ARGV_RASA = """
import sys, pathlib
args = sys.argv[1:]
pathlib.Path(args[args.index("--record") + 1]).open("a").write(" ".join(args) + "\\n")
out = pathlib.Path(args[args.index("--out") + 1])
name = args[args.index("--fixed-model-name") + 1]
(out / (name + ".tar.gz")).write_bytes(b"model")
print(f"Your Rasa model is trained and saved at '{out / name}.tar.gz'.")
"""


def test_rasa_validates_the_data_again_only_when_the_project_files_changed(
    project_db: Any, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A knowledge-base retrain skips Rasa's validation (~7 s) when the project's own files
    are those a training already validated; a changed data file is validated again."""
    import shutil
    import sys

    from xiaoer.core.config import PROJECT_ROOT
    from xiaoer.knowledge.store import KnowledgeStore
    from xiaoer.training import trainer

    project = tmp_path / "project"
    shutil.copytree(PROJECT_ROOT / "data", project / "data")
    shutil.copyfile(PROJECT_ROOT / "domain.yml", project / "domain.yml")
    shutil.copyfile(PROJECT_ROOT / "config.yml", project / "config.yml")
    monkeypatch.setattr(trainer, "project_dir", lambda: project)
    monkeypatch.delenv(trainer.CONFIG_ENV, raising=False)
    script, record = tmp_path / "fake_rasa.py", tmp_path / "argv.txt"
    script.write_text(ARGV_RASA)
    real_args = trainer.rasa_train_args

    def args(inputs: Any, out: Path, name: str | None = None, **kw: Any) -> list[str]:
        return [sys.executable, str(script), *real_args(inputs, out, name, **kw)[2:],
                "--record", str(record)]  # fmt: skip

    monkeypatch.setattr(trainer, "rasa_train_args", args)
    store = KnowledgeStore(project_db)
    for run in ("run1", "run2"):
        trainer.train(run, store=store, out=tmp_path / "models")
    edited = sorted((project / "data" / "rules").glob("*.yml"))[0]
    with edited.open("a", encoding="utf-8") as f:
        f.write("\n# a designer's edit\n")
    trainer.train("run3", store=store, out=tmp_path / "models")
    trainer.train("run4", store=store, out=tmp_path / "models")
    runs = record.read_text().splitlines()
    assert ["--skip-validation" in r for r in runs] == [False, True, False, True]

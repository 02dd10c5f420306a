"""Training a model from the project's data and the knowledge base (``rasa train`` in a
child process, so the worker stays responsive and gets its memory back), with progress.

Where things are (``training`` in xiaoer.yml):

* ``project_dir``: the folder of the project's Rasa files (``data/``, ``domain.yml``,
  ``config.yml``), where the inbox writes accepted examples too (default: the folder of
  xiaoer.yml when it holds a ``domain.yml``, else the code's folder: a deployment's or a
  test stack's xiaoer.yml may stand alone);
* ``config``: the pipeline (default ``config.yml`` of the project folder;
  ``$XIAOER_TRAINING_CONFIG`` overrides it, e.g. a small configuration in tests);
* ``models_dir``: where trained models go (default ``models/``), a folder every Rasa server
  can read (the same machine, or shared storage at scale): a model is loaded by path;
* ``build_dir``: the generated training files (default ``<data_dir>/training``).

Rasa's validation of the domain and the training data (``rasa train`` runs it first, ~7 s)
is run when the project's own Rasa files changed since the last training that passed it
(their SHA-256 in ``<build_dir>/validated.sha256``), not on every knowledge-base retrain: the
knowledge base's phrasings can only give Rasa's validator warnings, which do not stop a
training (the import refuses collisions itself).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from xiaoer.core.config import PROJECT_ROOT, get_settings
from xiaoer.knowledge.store import KnowledgeStore, get_knowledge_store
from xiaoer.knowledge.training_data import KNOWLEDGE_NLU_FILE, TrainingInputs, write_inputs

logger = logging.getLogger(__name__)
CONFIG_ENV = "XIAOER_TRAINING_CONFIG"
Progress = Callable[[str, int], None]  # (Chinese text, percent of the training step)


def training_settings() -> dict:
    return get_settings().section("training")


def project_dir() -> Path:
    """Where the project's Rasa files are (what is trained, where the inbox writes)."""
    settings = get_settings()
    configured = training_settings().get("project_dir")
    if configured:
        path = Path(configured)
        return path if path.is_absolute() else settings.root / path
    if (settings.root / "domain.yml").is_file() and (settings.root / "data").is_dir():
        return Path(settings.root)
    return PROJECT_ROOT


def config_path() -> Path:
    root = project_dir()
    configured = os.environ.get(CONFIG_ENV) or training_settings().get("config") or "config.yml"
    path = Path(configured)
    return path if path.is_absolute() else root / path


def models_dir() -> Path:
    root = PROJECT_ROOT
    path = Path(training_settings().get("models_dir") or "models")
    return path if path.is_absolute() else root / path


def build_dir() -> Path:
    configured = training_settings().get("build_dir")
    if configured:
        path = Path(configured)
        return path if path.is_absolute() else PROJECT_ROOT / path
    return get_settings().data_dir / "training"


def prepare(out: Path | None = None, store: KnowledgeStore | None = None) -> TrainingInputs:
    """Generate the knowledge base's training files beside the project's own."""
    store = store or get_knowledge_store()
    return write_inputs(out or build_dir() / "build", store.all(), project_dir())


def rasa_train_args(
    inputs: TrainingInputs, out: Path, name: str | None = None, *, skip_validation: bool = False
) -> list[str]:
    args = [
        str(Path(sys.executable).with_name("rasa")), "train",
        "--config", str(config_path()), "--domain", str(inputs.domain),
        "--data", *[str(p) for p in inputs.data], "--out", str(out),
    ]  # fmt: skip
    if name:
        args += ["--fixed-model-name", name]
    if skip_validation:
        args.append("--skip-validation")
    return args


VALIDATED_FILE = "validated.sha256"


def project_files_digest(inputs: TrainingInputs) -> str:
    """SHA-256 of what Rasa's validation judges: the pipeline, the domain and every training
    file, except the knowledge base's phrasings (``knowledge_nlu.yml``)."""
    digest = hashlib.sha256()
    files = [config_path()]
    for place in [inputs.domain, *inputs.data]:
        files += sorted(p for p in place.rglob("*") if p.is_file()) if place.is_dir() else [place]
    for path in files:
        if path.name == KNOWLEDGE_NLU_FILE:
            continue
        digest.update(str(path).encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"(missing)")
        digest.update(b"\0")
    return digest.hexdigest()


def validated_before(digest: str) -> bool:
    """Whether a training that passed Rasa's validation had project files of ``digest``."""
    validated = build_dir() / VALIDATED_FILE
    return validated.is_file() and validated.read_text().strip() == digest


def record_validated(digest: str) -> None:
    """A training that ran Rasa's validation on project files of ``digest`` (taken before
    it started: a file edited meanwhile is validated next time) succeeded."""
    validated = build_dir() / VALIDATED_FILE
    validated.parent.mkdir(parents=True, exist_ok=True)
    validated.write_text(digest + "\n")


class TrainingError(RuntimeError):
    """``rasa train`` failed; the message ends with the tail of its output."""


_BAR = re.compile(r"Epochs:\s+(\d+)%")
_COMPONENT = re.compile(r"Starting to train component '(\w+)'")
COMPONENT_LABELS = {
    "PkusegTokenizer": "分词",
    "DIETClassifier": "意图识别",
    "IntentsAlone": "意图识别（不含知识库）",
    "ResponseSelector": "知识库问答",
    "TEDPolicy": "对话策略",
    "RulePolicy": "对话规则",
    "MemoizationPolicy": "对话记忆",
}


@dataclass
class Trained:
    model: Path
    seconds: float
    retrieval_intents: int


def train(
    name: str,
    progress: Progress | None = None,
    *,
    store: KnowledgeStore | None = None,
    timeout: float | None = None,
    log: Path | None = None,
    out: Path | None = None,
) -> Trained:
    """Train ``<out or models_dir>/<name>.tar.gz``; ``progress`` hears the stage and percent."""
    say = progress or (lambda text, percent: None)
    started = time.monotonic()
    say("准备训练数据（项目数据 + 知识库）", 0)
    inputs = prepare(store=store)
    digest = project_files_digest(inputs)
    unchanged = validated_before(digest)
    out = out or models_dir()
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2",
           "SQLALCHEMY_SILENCE_UBER_WARNING": "1", "PYTHONWARNINGS": "ignore"}  # fmt: skip
    timeout = timeout or float(training_settings().get("timeout_minutes") or 30) * 60
    proc = subprocess.Popen(
        rasa_train_args(inputs, out, name, skip_validation=unchanged),
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert proc.stdout is not None
    tail: list[str] = []
    component = "模型"
    last_percent = -1
    buffer = b""
    sink = open(log, "ab") if log else None  # noqa: SIM115 - closed below
    try:
        while True:
            chunk = (
                proc.stdout.read1(4096) if hasattr(proc.stdout, "read1") else proc.stdout.read(4096)
            )
            if not chunk:
                break
            if sink:
                sink.write(chunk)
            buffer += chunk
            *lines, buffer = re.split(rb"[\r\n]", buffer)
            for raw in lines:
                line = raw.decode("utf-8", "replace").strip()
                if not line:
                    continue
                tail = (tail + [line])[-30:]
                started_component = _COMPONENT.search(line)
                if started_component:
                    label = started_component.group(1)
                    component = COMPONENT_LABELS.get(label, label)
                    last_percent = -1
                    say(f"训练中：{component}", 0)
                    continue
                m = _BAR.search(line)
                if m:
                    percent = int(m.group(1))
                    if percent != last_percent:
                        say(f"训练中：{component} {percent}%", percent)
                    last_percent = percent
            if time.monotonic() - started > timeout:
                proc.kill()
                raise TrainingError(f"训练超时（超过 {timeout / 60:.0f} 分钟）")
        code = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if sink:
            sink.close()
    model = out / f"{name}.tar.gz"
    saved = any("Your Rasa model is trained and saved" in line for line in tail)
    if not model.exists() or not (code == 0 or saved):
        raise TrainingError(f"训练失败（退出码 {code}）：" + "\n".join(tail[-8:]))
    if code != 0:  # e.g. a library crashing at exit after the model was written
        logger.warning("rasa train exited with %s after saving %s", code, model.name)
    if not unchanged:  # validated by this run: the next one need not, files unchanged
        record_validated(digest)
    say("训练完成", 100)
    return Trained(model, time.monotonic() - started, inputs.entries)

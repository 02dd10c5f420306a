"""Writing accepted inbox examples into the project's NLU data, comments and order kept.

``plan(...)`` computes the change (the files' new text and a unified diff, shown to the
designer before anything is written); ``apply(...)`` writes it, runs
``rasa data validate`` and puts every file back as it was when validation fails.

* An existing intent gets its examples appended to its own ``examples: |`` block, in the
  ``data/nlu/<topic>.yml`` that defines it (ruamel.yaml round trip: comments, order,
  quoting and layout of the rest of the file unchanged; a change that would touch any
  other line is refused).
* A new intent is appended to ``data/nlu/<topic>.yml`` (the topic the designer names,
  default ``learned``) and added to ``domain.yml``'s ``intents`` as one inserted line
  (domain.yml is not re-serialised: its quoted emoji would come back escaped). It still
  needs a rule or story to be answered (docs/designers.md).
* Examples already present (same normalised text) are skipped; square brackets become
  full-width (Rasa would read ``[..](..)`` as an entity annotation); a phone number or
  WeChat id becomes a placeholder (13800000000, wxid_example): no customer's contact
  goes into the training data.
"""

from __future__ import annotations

import difflib
import io
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import LiteralScalarString

from xiaoer.learning.inbox import text_key

DEFAULT_TOPIC = "learned"
INTENT_NAME = re.compile(r"^[a-z][a-z0-9_]{1,62}$")
TOPIC_NAME = re.compile(r"^[a-z][a-z0-9_]{1,40}$")


class NluDataError(ValueError):
    """The change cannot be made (bad name, a file that would change elsewhere…)."""


def _yaml() -> YAML:
    y = YAML()
    y.preserve_quotes = True  # type: ignore[assignment]
    y.width = 4096  # type: ignore[assignment]
    y.indent(mapping=2, sequence=2, offset=0)
    return y


# a customer's contact never goes into the training data (it is committed to git): each
# phone or WeChat id becomes a placeholder of the same kind (the contact extractor, not
# DIET, reads contacts; the example keeps its shape)
PLACEHOLDER_CONTACTS = {"phone": "13800000000", "wechat": "wxid_example"}


def strip_contacts(text: str) -> str:
    from xiaoer.core.logsafe import mask_pii
    from xiaoer.text.contacts import find_contacts

    out, last = [], 0
    for c in find_contacts(text):
        if c.start < last:
            continue
        out.append(text[last : c.start])
        out.append(PLACEHOLDER_CONTACTS.get(c.kind, "13800000000"))
        last = c.end
    out.append(text[last:])
    value = "".join(out)
    if mask_pii(value) != value:  # anything the log filter still sees as a mobile number
        value = re.sub(r"1[3-9]\d{9}", PLACEHOLDER_CONTACTS["phone"], value)
    return value


def clean_example(text: str) -> str:
    value = " ".join(str(text).split())
    value = strip_contacts(value.lstrip("-").strip())
    return value.replace("[", "［").replace("]", "］")


@dataclass
class FileChange:
    path: Path
    old: str
    new: str

    def diff(self, root: Path) -> str:
        name = str(self.path.relative_to(root))
        return "".join(
            difflib.unified_diff(
                self.old.splitlines(True),
                self.new.splitlines(True),
                fromfile=f"a/{name}",
                tofile=f"b/{name}",
            )
        )


@dataclass
class Plan:
    root: Path
    intent: str
    examples: list[str]
    skipped: list[str] = field(default_factory=list)
    changes: list[FileChange] = field(default_factory=list)
    new_intent: bool = False

    @property
    def diff(self) -> str:
        return "".join(c.diff(self.root) for c in self.changes)

    @property
    def empty(self) -> bool:
        return not self.changes


def _nlu_files(root: Path) -> list[Path]:
    return sorted((root / "data" / "nlu").glob("*.yml"))


def _dump(y: YAML, data: Any) -> str:
    out = io.StringIO()
    y.dump(data, out)
    return out.getvalue()


def _find_intent(root: Path, intent: str) -> tuple[Path, Any, Any] | None:
    y = _yaml()
    for path in _nlu_files(root):
        data = y.load(path.read_text(encoding="utf-8"))
        for entry in (data or {}).get("nlu") or []:
            if isinstance(entry, dict) and entry.get("intent") == intent:
                return path, data, entry
    return None


def known_examples(root: Path) -> set[str]:
    """Every training example's normalised text (for the "already known" check)."""
    y = _yaml()
    found: set[str] = set()
    for path in _nlu_files(root):
        data = y.load(path.read_text(encoding="utf-8"))
        for entry in (data or {}).get("nlu") or []:
            if isinstance(entry, dict) and entry.get("intent"):
                for line in str(entry.get("examples") or "").splitlines():
                    line = line.strip()
                    if line.startswith("- "):
                        found.add(text_key(re.sub(r"\]\([^)]*\)", "]", line[2:])))
    return found


def domain_intents(root: Path) -> list[str]:
    import yaml

    domain = yaml.safe_load((root / "domain.yml").read_text(encoding="utf-8")) or {}
    names = []
    for entry in domain.get("intents") or []:
        names.append(str(next(iter(entry)) if isinstance(entry, dict) else entry))
    return names


def _only_additions(old: str, new: str) -> bool:
    for line in difflib.ndiff(old.splitlines(), new.splitlines()):
        if line.startswith("- "):
            return False
    return True


def _add_domain_intent(text: str, intent: str) -> str:
    """``intent`` inserted after the last item of the top-level ``intents:`` list."""
    lines = text.splitlines(True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == "intents:"), None)
    if start is None:
        raise NluDataError("domain.yml has no top-level intents: list")
    last, indent = start, "  - "
    for i in range(start + 1, len(lines)):
        line = lines[i]
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[:1] not in (" ", "-"):
            break
        stripped = line.lstrip()
        if stripped.startswith("- "):
            indent = line[: len(line) - len(stripped)] + "- "
            last = i
        elif line.startswith(" " * (len(indent) - 1)):
            last = i  # a continuation of the item (``- greet:`` with options)
        else:
            break
    lines.insert(last + 1, f"{indent}{intent}\n")
    return "".join(lines)


def plan(root: Path, intent: str, texts: list[str], topic: str | None = None) -> Plan:
    """The change that adds ``texts`` as examples of ``intent`` (nothing written)."""
    if not INTENT_NAME.match(intent or ""):
        raise NluDataError("意图名只能包含小写字母、数字和下划线，以字母开头（例如 ask_gift_wrap）")
    if intent in ("nlu_fallback", "out_of_scope_inbox"):
        raise NluDataError(f"不能向 {intent} 添加例句")
    known = known_examples(root)
    result = Plan(root=root, intent=intent, examples=[])
    seen: set[str] = set()
    for text in texts:
        example = clean_example(text)
        key = text_key(example)
        if not key or key in known or key in seen:
            result.skipped.append(text)
            continue
        seen.add(key)
        result.examples.append(example)
    if not result.examples:
        return result
    y = _yaml()
    found = _find_intent(root, intent)
    if found is not None:
        path, data, entry = found
        old = path.read_text(encoding="utf-8")
        block = str(entry.get("examples") or "")
        if block and not block.endswith("\n"):
            block += "\n"
        block += "".join(f"- {e}\n" for e in result.examples)
        entry["examples"] = LiteralScalarString(block)
        new = _dump(y, data)
        if not _only_additions(old, new):
            raise NluDataError(f"{path.name} 无法在不改动其他内容的情况下写入，请手工添加")
        result.changes.append(FileChange(path, old, new))
        return result
    topic = topic or DEFAULT_TOPIC
    if not TOPIC_NAME.match(topic):
        raise NluDataError("主题文件名只能包含小写字母、数字和下划线")
    result.new_intent = True
    path = root / "data" / "nlu" / f"{topic}.yml"
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    examples = "".join(f"    - {e}\n" for e in result.examples)
    entry_text = f"- intent: {intent}\n  examples: |\n{examples}"
    if old:
        new = old + ("" if old.endswith("\n") else "\n") + entry_text
    else:
        new = (
            'version: "3.1"\n'
            "# intents learned from the inbox (待学习); move them to their topic's file freely\n"
            f"nlu:\n{entry_text}"
        )
    check = y.load(new)
    if not isinstance(check, dict) or not check.get("nlu"):
        raise NluDataError(f"{path.name} 不是有效的 Rasa NLU 文件")
    result.changes.append(FileChange(path, old, new))
    if intent not in domain_intents(root):
        domain = root / "domain.yml"
        old_domain = domain.read_text(encoding="utf-8")
        new_domain = _add_domain_intent(old_domain, intent)
        import yaml

        if intent not in [
            str(next(iter(e)) if isinstance(e, dict) else e)
            for e in (yaml.safe_load(new_domain) or {}).get("intents") or []
        ]:
            raise NluDataError("domain.yml 的 intents 无法自动添加，请手工添加")
        result.changes.append(FileChange(domain, old_domain, new_domain))
    return result


def validate(root: Path, timeout: float = 600) -> tuple[bool, str]:
    """``rasa data validate`` on the project at ``root``: (passed, its output)."""
    rasa = str(Path(sys.executable).with_name("rasa"))
    import os

    from xiaoer.devtools.stack import RASA_ENV

    proc = subprocess.run(
        [rasa, "data", "validate", "--data", "data", "--domain", "domain.yml",
         "--config", "config.yml"],
        cwd=root, env={**os.environ, **RASA_ENV}, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    return proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]


def apply(change: Plan, check: bool = True) -> tuple[bool, str]:
    """Write the planned files; with ``check``, validate and restore them on failure.
    Refuses when a file changed since the plan was made (someone else edited it)."""
    for c in change.changes:
        current = c.path.read_text(encoding="utf-8") if c.path.exists() else ""
        if current != c.old:
            raise NluDataError(f"{c.path.name} 在预览之后被修改过，请重新预览")
    for c in change.changes:
        c.path.write_text(c.new, encoding="utf-8")
    if not check:
        return True, ""
    ok, output = validate(change.root)
    if not ok:
        for c in change.changes:
            if c.old:
                c.path.write_text(c.old, encoding="utf-8")
            else:
                c.path.unlink(missing_ok=True)
    return ok, output

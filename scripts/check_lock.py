#!/usr/bin/env python3
"""Is requirements/lock.txt in step with the dependencies declared in pyproject.toml?

`make lock` compiles the lock with pip-compile and then runs this script with ``--stamp``,
which writes into the lock's header a SHA-256 of what the lock was compiled from: the
``[project]`` dependencies and optional dependencies of pyproject.toml and the pins of
requirements/constraints.txt. Without ``--stamp`` (as scripts/test.sh runs it, offline) it
fails with "requirements/lock.txt is out of date: run `make lock`" when

* that hash differs from the stamp (a dependency was added, removed or changed since the
  lock was compiled), or
* a declared dependency or constraint that applies to this Python is not pinned in the
  lock, or pinned at a version outside its declared range (a hand-edited lock), or
* a build requirement of requirements/build.txt is not pinned in the lock (bootstrap
  installs those first, constrained by the lock).

No network: it reads the three files and compares, with ``packaging`` for names, ranges
and markers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (Rasa 3.6)
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
STAMP_PREFIX = "# pyproject-sha256: "
STAMP_RE = re.compile(r"^# pyproject-sha256: ([0-9a-f]{64})\b", re.MULTILINE)
OUT_OF_DATE = "requirements/lock.txt is out of date: run `make lock`"


class LockError(Exception):
    """The lock does not match what it should have been compiled from."""


def _requirement_lines(path: Path) -> list[str]:
    """The requirement lines of a requirements file: no comments, options or blanks."""
    if not path.exists():
        return []
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        lines.append(line.rstrip("\\").strip())
    return lines


def declared(pyproject: Path) -> tuple[list[str], dict[str, list[str]]]:
    """The [project] dependencies and optional dependencies of a pyproject.toml."""
    with pyproject.open("rb") as fh:
        project = tomllib.load(fh).get("project", {})
    deps = list(project.get("dependencies", []))
    extras = {name: list(reqs) for name, reqs in project.get("optional-dependencies", {}).items()}
    return deps, extras


def _normalise(req: str) -> str:
    return str(Requirement(req))


def inputs_hash(pyproject: Path, constraints: Path) -> str:
    """SHA-256 of what the lock is compiled from, insensitive to order and spacing."""
    deps, extras = declared(pyproject)
    payload = {
        "dependencies": sorted(_normalise(r) for r in deps),
        "optional-dependencies": {
            name: sorted(_normalise(r) for r in reqs) for name, reqs in sorted(extras.items())
        },
        "constraints": sorted(_normalise(r) for r in _requirement_lines(constraints)),
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def pins(lock: Path) -> dict[str, Version]:
    """Canonical name -> pinned version, for every ``name==version`` line of the lock."""
    pinned: dict[str, Version] = {}
    for line in _requirement_lines(lock):
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            raise LockError(f"{lock.name}: cannot parse {line!r}: {exc}") from exc
        exact = [s for s in req.specifier if s.operator in ("==", "===")]
        if len(exact) != 1:
            raise LockError(f"{lock.name}: {line!r} is not an exact pin (name==version)")
        pinned[canonicalize_name(req.name)] = Version(exact[0].version)
    return pinned


def stamp(pyproject: Path, lock: Path, constraints: Path) -> str:
    """Write (or replace) the hash line in the lock's header; returns the hash."""
    digest = inputs_hash(pyproject, constraints)
    lines = [
        ln
        for ln in lock.read_text(encoding="utf-8").splitlines()
        if not ln.startswith(STAMP_PREFIX)
    ]
    header_end = next((i for i, ln in enumerate(lines) if not ln.startswith("#")), len(lines))
    line = f"{STAMP_PREFIX}{digest} (pyproject.toml dependencies, written by `make lock`)"
    lines.insert(header_end, line)
    lock.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return digest


def problems(pyproject: Path, lock: Path, constraints: Path, build: Path) -> list[str]:
    """Every reason the lock is out of date; empty when it is in step."""
    if not lock.exists():
        return [f"{lock} does not exist"]
    found: list[str] = []
    match = STAMP_RE.search(lock.read_text(encoding="utf-8"))
    if match is None:
        found.append("the lock has no pyproject-sha256 stamp (it was not written by `make lock`)")
    elif match.group(1) != inputs_hash(pyproject, constraints):
        found.append(
            "the dependencies in pyproject.toml (or requirements/constraints.txt) changed "
            "since the lock was compiled"
        )
    pinned = pins(lock)
    deps, extras = declared(pyproject)
    wanted = [("dependencies", r) for r in deps]
    wanted += [(f"extra {name!r}", r) for name, reqs in extras.items() for r in reqs]
    wanted += [("constraints", r) for r in _requirement_lines(constraints)]
    for where, text in wanted:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate():
            continue
        version = pinned.get(canonicalize_name(req.name))
        if version is None:
            found.append(f"{req.name} ({where}: {text!r}) is not pinned in the lock")
        elif not req.specifier.contains(version, prereleases=True):
            found.append(f"{req.name} is pinned at {version}, outside {where}: {text!r}")
    for text in _requirement_lines(build):
        name = Requirement(text).name
        if canonicalize_name(name) not in pinned:
            found.append(f"{name} ({build.name}) is not pinned in the lock")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pyproject", type=Path, default=ROOT / "pyproject.toml")
    parser.add_argument("--lock", type=Path, default=ROOT / "requirements" / "lock.txt")
    parser.add_argument(
        "--constraints", type=Path, default=ROOT / "requirements" / "constraints.txt"
    )
    parser.add_argument("--build", type=Path, default=ROOT / "requirements" / "build.txt")
    parser.add_argument(
        "--stamp", action="store_true", help="write the hash into the lock (make lock does)"
    )
    args = parser.parse_args(argv)
    errors = (LockError, InvalidRequirement, OSError, tomllib.TOMLDecodeError)
    if args.stamp:
        try:
            digest = stamp(args.pyproject, args.lock, args.constraints)
        except errors as exc:
            print(f"error: cannot stamp {args.lock}: {exc}", file=sys.stderr)
            return 1
        print(f"==> stamped {args.lock.name} with pyproject-sha256 {digest[:12]}")
        return 0
    try:
        found = problems(args.pyproject, args.lock, args.constraints, args.build)
    except errors as exc:
        found = [str(exc)]
    if found:
        print(f"error: {OUT_OF_DATE}", file=sys.stderr)
        for item in found:
            print(f"  - {item}", file=sys.stderr)
        return 1
    print("==> requirements/lock.txt is in step with pyproject.toml")
    return 0


if __name__ == "__main__":
    sys.exit(main())

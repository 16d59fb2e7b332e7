"""Fail unless every declared lower bound is the version installed (run after lowest-direct).

A floor the resolver had to lift (another dependency needs more) was never tested; this names
each such floor and the version that was actually installed, so the floor can be raised.
"""

from __future__ import annotations

import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

PROJECTS = [
    "pyproject.toml",
    "integrations/langchain/pyproject.toml",
    "integrations/llama-index/pyproject.toml",
]
WORKSPACE = {"reliable-llm", "langchain-reliable-llm", "llama-index-llms-reliable"}


def _requirements(path: Path) -> list[str]:
    data = tomllib.loads(path.read_text())
    project = data["project"]
    found = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        found += extra
    for group in data.get("dependency-groups", {}).values():
        found += [r for r in group if isinstance(r, str)]
    return found


def main() -> int:
    """Print each untested floor; return 1 if there is one."""
    wrong = []
    for project in PROJECTS:
        for text in _requirements(Path(project)):
            requirement = Requirement(text)
            name = canonicalize_name(requirement.name)
            floors = [s.version for s in requirement.specifier if s.operator == ">="]
            if name in WORKSPACE or not floors:
                continue
            try:
                installed = version(name)
            except PackageNotFoundError:
                wrong.append(f"{project}: {text} is not installed")
                continue
            if Version(installed) != Version(floors[0]):
                wrong.append(f"{project}: {text} resolved to {installed}, not its floor")
    for line in wrong:
        print(line)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())

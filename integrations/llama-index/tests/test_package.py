"""Packaging: LlamaIndex class hierarchy, the namespace import and the built wheel."""

from __future__ import annotations

import email.parser
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import llama_index.llms.reliable as package
import pytest
from llama_index.core.base.llms.base import BaseLLM
from llama_index.core.llms import LLM
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.llms.reliable import ReliableLLM

PROJECT = Path(__file__).resolve().parents[1]
ROOT = PROJECT.parents[1]


def test_reliable_llm_is_a_function_calling_llm() -> None:
    """ReliableLLM is a FunctionCallingLLM, an LLM and a BaseLLM, as LlamaIndex checks."""
    mro = ReliableLLM.__mro__
    assert FunctionCallingLLM in mro
    assert LLM in mro
    assert BaseLLM in mro
    assert ReliableLLM.class_name() == "ReliableLLM"


def test_public_surface_is_pinned() -> None:
    """The package exports exactly its documented names."""
    assert package.__all__ == [
        "LlamaIndexLLMProvider",
        "ReliableBreakerTransitionEvent",
        "ReliableCacheHitEvent",
        "ReliableFallbackEvent",
        "ReliableLLM",
        "ReliableLLMMetadata",
        "ReliableRequestEvent",
        "ReliableRetryEvent",
        "classify_llm_error",
    ]


def test_namespace_packages_have_no_init() -> None:
    """llama_index and llama_index.llms stay PEP 420 namespaces in the source tree."""
    assert not (PROJECT / "llama_index" / "__init__.py").exists()
    assert not (PROJECT / "llama_index" / "llms" / "__init__.py").exists()
    assert (PROJECT / "llama_index" / "llms" / "reliable" / "py.typed").exists()


def _uv() -> str | None:
    local = ROOT / ".tools" / "bin" / "uv"
    return str(local) if local.exists() else shutil.which("uv")


def test_wheel_is_a_namespace_package_that_coexists_with_core(tmp_path: Path) -> None:
    """The built wheel ships no namespace __init__.py and imports beside llama-index-core."""
    uv = _uv()
    if uv is None:
        pytest.skip("uv is not installed (make sync installs it into .tools)")
    env = {**os.environ, "UV_OFFLINE": "1", "UV_PYTHON_DOWNLOADS": "never"}
    subprocess.run(
        [uv, "build", "--wheel", str(PROJECT), "-o", str(tmp_path), "-q"],
        check=True,
        env=env,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("llama_index_llms_reliable-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(archive.read(metadata_name).decode())
        archive.extractall(tmp_path / "site")
    assert "llama_index/__init__.py" not in names
    assert "llama_index/llms/__init__.py" not in names
    assert {"llama_index/llms/reliable/__init__.py", "llama_index/llms/reliable/py.typed"} <= names
    requirements = sorted(re.split(r"[<>=!~ ;]", r)[0] for r in metadata.get_all("Requires-Dist"))
    assert requirements == ["llama-index-core", "reliable-llm"]
    probe = (
        "import llama_index.core, llama_index.llms.reliable as r;"
        "print(r.__file__); print(llama_index.core.__file__);"
        "print(r.ReliableLLM.__mro__[1].__name__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "site")},
    ).stdout.split()
    assert out[0].startswith(str(tmp_path / "site"))
    assert "site-packages" in out[1]
    assert out[2] == "FunctionCallingLLM"


def test_importing_the_package_loads_no_sdk() -> None:
    """Importing llama_index.llms.reliable imports neither openai nor anthropic."""
    probe = (
        "import sys, llama_index.llms.reliable;"
        "print(sorted(m for m in ('openai', 'anthropic') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "[]"

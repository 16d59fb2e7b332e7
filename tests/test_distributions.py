"""The three distributions as a package index receives them: built, then inspected."""

from __future__ import annotations

import email.message
import email.parser
import os
import re
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

import reliable_llm

ROOT = Path(__file__).resolve().parent.parent
# Distribution name -> (archive stem, top-level import directory inside the archive).
DISTRIBUTIONS = {
    "reliable-llm": ("reliable_llm", "reliable_llm"),
    "langchain-reliable-llm": ("langchain_reliable_llm", "langchain_reliable_llm"),
    "llama-index-llms-reliable": ("llama_index_llms_reliable", "llama_index"),
}
# Files an sdist may carry beside its package: metadata, readme, licence, build config.
SDIST_EXTRAS = {"PKG-INFO", "pyproject.toml", "README.md", "LICENSE", ".gitignore"}


def _uv() -> str | None:
    local = ROOT / ".tools" / "bin" / "uv"
    return str(local) if local.exists() else shutil.which("uv")


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sdists and wheels of every workspace member, built offline as ``make`` would."""
    uv = _uv()
    if uv is None:
        pytest.skip("uv is not installed (make sync installs it into .tools)")
    out = tmp_path_factory.mktemp("dist")
    env = {**os.environ, "UV_OFFLINE": "1", "UV_PYTHON_DOWNLOADS": "never"}
    subprocess.run(
        [uv, "build", "--all-packages", "-o", str(out), "-q"],
        check=True,
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=300,
    )
    return out


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(archive.read(name).decode())


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_sdist_holds_only_its_package_readme_and_license(dist: Path, name: str) -> None:
    """An sdist has its own package, README, LICENSE and build config; no lock, CI or tests."""
    stem, package = DISTRIBUTIONS[name]
    (sdist,) = dist.glob(f"{stem}-*.tar.gz")
    with tarfile.open(sdist) as archive:
        members = [m.split("/", 1)[1] for m in archive.getnames() if "/" in m]
    outside = {m for m in members if m.split("/")[0] != package}
    assert outside == SDIST_EXTRAS
    assert any(m.endswith("/py.typed") for m in members)


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_wheel_carries_the_license_it_declares(dist: Path, name: str) -> None:
    """Each wheel ships its MIT LICENSE file in dist-info, matching License-Expression."""
    stem, _ = DISTRIBUTIONS[name]
    (wheel,) = dist.glob(f"{stem}-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        licenses = [n for n in archive.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
        assert licenses, "no LICENSE in the wheel"
        text = archive.read(licenses[0]).decode()
    metadata = _metadata(wheel)
    assert metadata["License-Expression"] == "MIT"
    assert text.startswith("MIT License")


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_long_description_renders_on_an_index(dist: Path, name: str) -> None:
    """The long description is Markdown whose links all work off the repository (absolute)."""
    stem, _ = DISTRIBUTIONS[name]
    (wheel,) = dist.glob(f"{stem}-*.whl")
    metadata = _metadata(wheel)
    assert metadata["Description-Content-Type"] == "text/markdown"
    body = metadata.get_payload()
    assert isinstance(body, str) and body.startswith("# ")
    links = re.findall(r"\]\(([^)\s]+)\)", body)
    assert [link for link in links if not link.startswith(("https://", "#"))] == []


@pytest.mark.parametrize("name", ["langchain-reliable-llm", "llama-index-llms-reliable"])
def test_adapters_pin_a_compatible_core(dist: Path, name: str) -> None:
    """Each adapter requires reliable-llm from this version up to the next minor release."""
    stem, _ = DISTRIBUTIONS[name]
    (wheel,) = dist.glob(f"{stem}-*.whl")
    requires = _metadata(wheel).get_all("Requires-Dist") or []
    (core,) = [r for r in requires if re.match(r"reliable-llm\b", r)]
    major, minor, *_ = reliable_llm.__version__.split(".")
    assert sorted(core.removeprefix("reliable-llm").split(",")) == sorted(
        [f">={reliable_llm.__version__}", f"<{major}.{int(minor) + 1}"]
    )

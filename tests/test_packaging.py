"""Static checks of the container image and the CI entry (no Docker engine runs here)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def final_stage(text: str) -> str:
    return re.split(r"^FROM ", text, flags=re.M)[-1]


def test_dockerfile_copies_only_files_that_exist():
    for line in DOCKERFILE.splitlines():
        if line.startswith("COPY") and "--from=" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


def test_final_stage_runs_as_non_root_without_build_tools():
    stage = final_stage(DOCKERFILE)
    users = re.findall(r"^USER (\S+)", stage, flags=re.M)
    assert users and users[-1] not in {"root", "0"}
    assert "slim" in stage.splitlines()[0]
    assert not re.search(r"apt-get install|gcc|build-essential", stage)
    assert "HEALTHCHECK" in stage


def test_entry_point_is_the_tidegate_command():
    assert 'ENTRYPOINT ["tidegate"]' in final_stage(DOCKERFILE)


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()

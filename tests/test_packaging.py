"""Static checks of the container images and the CI entry (no Docker engine runs here)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def stages(text: str) -> dict[str, str]:
    """Each ``FROM ... AS name`` stage's text, by name."""
    found = {}
    for chunk in re.split(r"^(?=FROM )", text, flags=re.M)[1:]:
        match = re.match(r"FROM (\S+) AS (\S+)", chunk)
        assert match, chunk.splitlines()[0]
        found[match.group(2)] = chunk
    return found


def build_args(text: str) -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S+)", text, flags=re.M))


STAGES = stages(DOCKERFILE)


def base_image(stage: str) -> str:
    reference = STAGES[stage].split()[1]
    return re.sub(r"\$\{(\w+)\}", lambda m: build_args(DOCKERFILE)[m.group(1)], reference)


def test_dockerfile_copies_only_files_that_exist():
    for line in DOCKERFILE.splitlines():
        if line.startswith("COPY") and "--from=" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


def test_copies_between_stages_name_earlier_stages():
    names = list(STAGES)
    for index, (name, text) in enumerate(STAGES.items()):
        for source in re.findall(r"COPY --from=(\S+)", text):
            assert source in names[:index], (name, source)


def test_the_default_target_is_the_gateway():
    assert list(STAGES)[-1] == "gateway"


def test_final_images_run_as_non_root_without_build_tools():
    for name in ("gateway", "worker"):
        stage = STAGES[name]
        users = re.findall(r"^USER (\S+)", stage, flags=re.M)
        assert users and users[-1] not in {"root", "0"}, name
        assert not re.search(r"apt-get install|gcc|build-essential|pip wheel", stage), name
        assert "HEALTHCHECK" in stage, name
        assert 'ENTRYPOINT ["tidegate"]' in stage, name


def test_the_gateway_image_is_slim_and_has_kubernetes_discovery_and_redis():
    assert "slim" in base_image("gateway")
    assert "tidegate[kubernetes,redis]" in STAGES["gateway"]
    assert '".[kubernetes,redis]"' in STAGES["build"]  # the wheels it installs from
    assert "--no-index" in STAGES["gateway"]  # installs only what the build stage made


def test_the_worker_image_is_the_official_vllm_one_in_step_with_the_gpu_extra():
    image = base_image("worker")
    assert image.startswith("vllm/vllm-openai:v")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    (pin,) = [d for d in extras["gpu"] if d.startswith("vllm")]
    major_minor = re.search(r"==(\d+\.\d+)", pin)
    assert major_minor and image.split(":v")[1].startswith(major_minor.group(1) + ".")
    # vLLM's environment is left as it is: Tidegate alone, no dependencies.
    assert "--no-deps" in STAGES["worker"]


def test_the_image_user_is_the_one_the_chart_runs_as():
    helpers = (ROOT / "helm" / "tidegate" / "templates" / "_helpers.tpl").read_text()
    assert "runAsUser: 10001" in helpers
    for name in ("gateway", "worker"):
        assert "--uid 10001" in STAGES[name] and "USER 10001" in STAGES[name]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_make_test_fetches_helm_for_the_chart_tests():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: .*\btools\b", makefile, flags=re.M)
    assert "scripts/fetch-helm.sh" in makefile
    assert "/.tools/" in (ROOT / ".gitignore").read_text().splitlines()

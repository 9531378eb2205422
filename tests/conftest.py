import pathlib
import sys
from collections.abc import Iterator

import pytest

# Make ``tests.harness`` importable under --import-mode=importlib.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from tests.k8s_server import api_server


@pytest.fixture(scope="session")
def kube_apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pathlib.Path]:
    """The admin kubeconfig of a real API server (CRDs only) shared by the session."""
    with api_server(tmp_path_factory.mktemp("apiserver")) as kubeconfig:
        yield kubeconfig

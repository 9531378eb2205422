"""A real Kubernetes API server for tests: upstream apiextensions-apiserver on etcd.

It serves CRDs and their ``/status`` and ``/scale`` subresources, nothing built in (see
shared/k8s/README.md), so adapters are tested against stand-in CRDs in test groups. One
server per test session (``kube_apiserver`` in tests/conftest.py); each test module uses its
own groups and namespaces. Where the server binary or etcd is missing the tests skip,
except under CI (``CI`` set), where that is a failure.
"""

from __future__ import annotations

import contextlib
import lzma
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

K8S = Path(__file__).resolve().parents[2] / "shared" / "k8s"
BINARY = K8S / "apiextensions-apiserver-v0.36.4-linux-amd64.xz"


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port_block() -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + 2 < 65536 and all(_free(port + i) for i in (1, 2)):
            return port
    raise RuntimeError("no three free ports in a row")


def _missing() -> str | None:
    if not BINARY.is_file():
        return f"no API server binary at {BINARY}"
    for tool in ("etcd", "openssl", "curl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: apt-get install etcd-server openssl curl)"
    return None


@contextlib.contextmanager
def api_server(run: Path) -> Iterator[Path]:
    """Start etcd and the API server under ``run``; yields the admin kubeconfig."""
    reason = _missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    binary = run / "apiextensions-apiserver"
    binary.write_bytes(lzma.decompress(BINARY.read_bytes()))
    binary.chmod(0o755)
    script = K8S / "start-apiextensions-apiserver.sh"
    port = str(_free_port_block())
    started = subprocess.run(
        ["bash", str(script), str(binary), str(run), port],
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield run / "admin.kubeconfig"
    finally:
        for pid_file in run.glob("*.pid"):
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text()), 15)


def register_crd(api: Any, crd: dict[str, Any], namespace: str = "default") -> None:
    """Create ``crd`` (unless it exists) and wait until its resource answers a list."""
    import kubernetes

    extensions = kubernetes.client.ApiextensionsV1Api(api)
    try:
        extensions.create_custom_resource_definition(crd)
    except kubernetes.client.exceptions.ApiException as exc:
        if exc.status != 409:
            raise
    spec = crd["spec"]
    version = next(v["name"] for v in spec["versions"] if v.get("served", True))
    custom = kubernetes.client.CustomObjectsApi(api)
    deadline = time.monotonic() + 30
    while True:  # established once a list answers
        try:
            custom.list_namespaced_custom_object(
                spec["group"], version, namespace, spec["names"]["plural"]
            )
            return
        except kubernetes.client.exceptions.ApiException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)

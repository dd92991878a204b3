"""API access from inside a pod: the ServiceAccount Kubernetes mounts, through the official client's loader.

A process runs in a pod when ``KUBERNETES_SERVICE_HOST`` and ``KUBERNETES_SERVICE_PORT`` are set and the
ServiceAccount token is mounted. The official ``InClusterConfigLoader`` then talks https to that address,
verifies the server with the mounted ``ca.crt`` and re-reads the token file every minute (projected tokens
are rotated). The files are checked first, so a broken mount is one line naming the file and what to do.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from kubernetes import client
from kubernetes.config import incluster_config
from kubernetes.config.config_exception import ConfigException

from ibconform.errors import UsageError

SERVICE_ACCOUNT_DIR = Path(incluster_config.SERVICE_TOKEN_FILENAME).parent
HOST_ENV, PORT_ENV = incluster_config.SERVICE_HOST_ENV_NAME, incluster_config.SERVICE_PORT_ENV_NAME
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_TOKEN = re.compile(r"[\x21-\x7e]+")  # visible ASCII: a bearer token has no space, newline or control character
_TOKEN_FIX = (
    "mount the ServiceAccount token (automountServiceAccountToken: true) readable by the pod's user "
    "(fsGroup, or the volume's defaultMode), or give --kubeconfig"
)
_CA_FIX = (
    "mount the ServiceAccount volume whole (ca.crt comes from the kube-root-ca.crt ConfigMap), or give --kubeconfig"
)


def in_pod(environ: Mapping[str, str] = os.environ, folder: Path = SERVICE_ACCOUNT_DIR) -> bool:
    """Running in a pod: the API service address is in the environment and the ServiceAccount token is mounted."""
    return bool(environ.get(HOST_ENV) and environ.get(PORT_ENV)) and os.path.lexists(folder / "token")


def load(
    configuration: client.Configuration, environ: Mapping[str, str] = os.environ, folder: Path = SERVICE_ACCOUNT_DIR
) -> str:
    """Configure ``configuration`` from the pod's ServiceAccount; return how the API is reached, for the run
    metadata (the server and the account's namespace, never the token). UsageError naming a bad file."""
    token_path, ca_path = folder / "token", folder / "ca.crt"
    token = _read(token_path, "the ServiceAccount token", _TOKEN_FIX)
    if not _TOKEN.fullmatch(token):
        raise UsageError(
            f"{token_path}: not a bearer token (empty, or holds spaces or control characters): {_TOKEN_FIX}"
        )
    _read(ca_path, "the cluster's CA bundle", _CA_FIX)
    try:
        ssl.create_default_context(cafile=str(ca_path))
    except (ssl.SSLError, ValueError) as exc:
        raise UsageError(
            f"{ca_path}: not a PEM CA certificate ({exc.__class__.__name__}): mount the "
            "ServiceAccount volume whole, unmodified"
        ) from None
    loader = incluster_config.InClusterConfigLoader(str(token_path), str(ca_path), environ=environ)
    try:
        loader.load_and_set(configuration)
    except ConfigException as exc:
        raise UsageError(f"in-cluster API access: {exc} ({HOST_ENV}, {PORT_ENV})") from None
    return f"in-cluster ServiceAccount of namespace {_namespace(folder)}, {without_userinfo(configuration.host)}"


def _read(path: Path, what: str, fix: str) -> str:
    try:
        return path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        raise UsageError(f"{path}: missing ({what}): {fix}") from None
    except OSError as exc:
        raise UsageError(f"{path}: unreadable ({what}: {exc.strerror or type(exc).__name__}): {fix}") from None


def _namespace(folder: Path) -> str:
    try:
        text = (folder / "namespace").read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return "unknown"
    return text if _NAMESPACE.fullmatch(text) else "unknown"


def without_userinfo(url: str) -> str:
    """``url`` without a user:password part, fit for a report.

    >>> without_userinfo("https://admin:s3cret@10.0.0.1:6443/k8s")
    'https://10.0.0.1:6443/k8s'
    """
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))

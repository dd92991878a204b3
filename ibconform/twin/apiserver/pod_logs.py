"""``pods/<name>/log`` for the twin's API server, answered as kube-apiserver and the node's kubelet answer it.

kube-apiserver picks the container (the only one, else the one named: ``a container name must be specified``),
answers nothing for a pod not yet bound to a node, and streams what the node's kubelet returns: the container's
log, or the kubelet's refusal when the container has not started (``is waiting to start: trying and failing to
pull image``), or the dial error of a node that does not answer. What a running container logged comes from the
cluster emulation (``ApiTwin.set_log_source``); a followed log (``kubectl logs -f``) then stays open while the
container runs, as it would with nothing more to say.

    >>> select("a\\nb\\nc\\n", {"tailLines": "2"})
    'b\\nc\\n'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ibconform.twin.apiserver.pod_exec import KUBELET_PORT, Kubelet
from ibconform.twin.apiserver.store import ApiError, bad_request, meta

#: The kubelet's words for a container waiting on its image (``validateContainerLogStatus``).
WAITING_WORDS = {"ErrImagePull": "image can't be pulled", "ImagePullBackOff": "trying and failing to pull image"}


def _d(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _names(spec: Mapping[str, Any], key: str) -> list[str]:
    return [str(_d(c).get("name")) for c in spec.get(key) or [] if isinstance(c, dict)]


def container(pod: Mapping[str, Any], requested: str | None) -> str:
    """The container whose log is asked for (``validateContainer``): the one named, or the pod's only one."""
    spec, name = _d(pod.get("spec")), meta(pod).get("name")
    containers = _names(spec, "containers")
    if not requested:
        if len(containers) == 1:
            return containers[0]
        every = _names(spec, "initContainers") + containers + _names(spec, "ephemeralContainers")
        if not every:
            raise bad_request(f"a container name must be specified for pod {name}")
        raise bad_request(f"a container name must be specified for pod {name}, choose one of: [{' '.join(every)}]")
    if requested not in containers + _names(spec, "initContainers") + _names(spec, "ephemeralContainers"):
        raise bad_request(f"container {requested} is not valid for pod {name}")
    return requested


def refusal(pod: Mapping[str, Any], name: str, previous: bool) -> ApiError | None:
    """The kubelet's answer when ``name`` has no log to give (not started, or no previous run), else None."""
    status = _d(pod.get("status"))
    statuses = [_d(s) for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses")
                for s in status.get(key) or []]
    found = next((s for s in statuses if s.get("name") == name), None)
    pod_name = meta(pod).get("name")
    if found is None:
        return bad_request(f'container "{name}" in pod "{pod_name}" is not available')
    state = _d(found.get("state"))
    if previous:
        if _d(found.get("lastState")).get("terminated") is None:
            return bad_request(f'previous terminated container "{name}" in pod "{pod_name}" not found')
        return None
    if state.get("running") is not None or state.get("terminated") is not None:
        return None
    reason = str(_d(state.get("waiting")).get("reason") or "")
    if not reason:
        return bad_request(f'container "{name}" in pod "{pod_name}" is waiting to start - no logs yet')
    words = WAITING_WORDS.get(reason, reason)
    return bad_request(f'container "{name}" in pod "{pod_name}" is waiting to start: {words}')


def running(pod: Mapping[str, Any], name: str) -> bool:
    """Whether container ``name`` of ``pod`` runs (a followed log stays open while it does)."""
    status = _d(pod.get("status"))
    return any(_d(s).get("name") == name and _d(_d(s).get("state")).get("running") is not None
               for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses")
               for s in status.get(key) or [])


def dial_error(kubelet: Kubelet, pod: Mapping[str, Any], name: str) -> ApiError:
    """kube-apiserver failing to reach the node's kubelet for the log."""
    where = f"{meta(pod).get('namespace')}/{meta(pod).get('name')}/{name}"
    return ApiError(500, "", f'Get "https://{kubelet.address}:{KUBELET_PORT}/containerLogs/{where}": dial tcp '
                             f"{kubelet.address}:{KUBELET_PORT}: connect: connection refused")


def _count(query: Mapping[str, str], key: str) -> int | None:
    text = query.get(key)
    if text in (None, ""):
        return None
    try:
        value = int(text)
    except ValueError:
        raise bad_request(f"{key}: Invalid value: {text!r}: must be an integer") from None
    if value < 0 or (key == "limitBytes" and value == 0):
        bound = "0" if key == "limitBytes" else "or equal to 0"
        raise bad_request(f"{key}: Invalid value: {value}: must be greater than {bound}")
    return value


def select(text: str, query: Mapping[str, str]) -> str:
    """The part of the log the query asks for: the last ``tailLines`` lines, at most ``limitBytes`` bytes."""
    tail, limit = _count(query, "tailLines"), _count(query, "limitBytes")
    if tail is not None:
        text = "".join(text.splitlines(keepends=True)[-tail:] if tail else [])
    if limit is not None:
        text = text.encode()[:limit].decode(errors="ignore")
    return text

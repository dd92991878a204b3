"""What a node's kubelet writes: pod statuses and the events that explain them.

Pure builders (pod in, status or event out); the controllers in ``cluster.py`` decide which applies.
Shapes and words are kubelet v1.31's: ``Back-off pulling image "<ref>"`` (``ImagePullBackOff``),
``Pod was rejected: Allocate failed due to ..., which is unexpected`` (``UnexpectedAdmissionError``,
``pkg/kubelet/cm/admission/errors.go``), ``FailedCreatePodSandBox`` when the pod's network cannot be set up.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from typing import Any

from ibconform.twin.apiserver.store import now_rfc3339

_EVENT_IDS = itertools.count()


def _hex(seed: str, length: int) -> str:
    out = ""
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(f"{seed}/{counter}".encode()).hexdigest()
        counter += 1
    return out[:length]


def _meta(pod: dict[str, Any]) -> dict[str, Any]:
    return pod.get("metadata") or {}


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return list((pod.get("spec") or {}).get("containers") or [])


def image_id(image: str) -> str:
    """``<repository>/<name>@sha256:<digest>`` as containerd reports a pulled image."""
    name = image.split("@", 1)[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    return f"{name}@sha256:{_hex(image, 64)}"


def _condition(kind: str, ok: bool, when: str, reason: str | None = None,
               message: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": kind, "status": "True" if ok else "False", "lastProbeTime": None,
                           "lastTransitionTime": when}
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message
    return out


def _ips(pod: dict[str, Any], host_ip: str, pod_ip: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"hostIP": host_ip, "hostIPs": [{"ip": host_ip}]}
    ip = host_ip if (pod.get("spec") or {}).get("hostNetwork") else pod_ip
    if ip:
        out |= {"podIP": ip, "podIPs": [{"ip": ip}]}
    return out


def running(pod: dict[str, Any], host_ip: str, pod_ip: str | None, started: str | None = None) -> dict[str, Any]:
    """Every container pulled, started and ready: phase Running, Ready True."""
    when = started or now_rfc3339()
    uid = _meta(pod).get("uid") or _meta(pod).get("name", "")
    statuses = [{
        "name": c.get("name"), "state": {"running": {"startedAt": when}}, "lastState": {}, "ready": True,
        "restartCount": 0, "image": c.get("image"), "imageID": image_id(str(c.get("image", ""))),
        "containerID": "containerd://" + _hex(f"{uid}/{c.get('name')}", 64), "started": True,
    } for c in containers(pod)]
    return {
        "phase": "Running",
        "conditions": [_condition(k, True, when) for k in
                       ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")],
        **_ips(pod, host_ip, pod_ip), "startTime": when, "containerStatuses": statuses,
        "qosClass": (pod.get("status") or {}).get("qosClass", "BestEffort"),
    }


def _waiting(pod: dict[str, Any], host_ip: str, pod_ip: str | None, reason: str, message: str | None,
             sandbox_ready: bool, started: str | None) -> dict[str, Any]:
    when = started or now_rfc3339()
    names = [str(c.get("name")) for c in containers(pod)]
    unready = f"containers with unready status: [{' '.join(names)}]"
    statuses = []
    for c in containers(pod):
        waiting = {"reason": reason} | ({"message": message} if message else {})
        statuses.append({"name": c.get("name"), "state": {"waiting": waiting}, "lastState": {}, "ready": False,
                         "restartCount": 0, "image": c.get("image"), "imageID": "", "started": False})
    return {
        "phase": "Pending",
        "conditions": [
            _condition("PodReadyToStartContainers", sandbox_ready, when),
            _condition("Initialized", True, when),
            _condition("Ready", False, when, "ContainersNotReady", unready),
            _condition("ContainersReady", False, when, "ContainersNotReady", unready),
            _condition("PodScheduled", True, when),
        ],
        **_ips(pod, host_ip, pod_ip if sandbox_ready else None), "startTime": when, "containerStatuses": statuses,
        "qosClass": (pod.get("status") or {}).get("qosClass", "BestEffort"),
    }


def image_pull_backoff(pod: dict[str, Any], host_ip: str, pod_ip: str | None, image: str,
                       started: str | None = None) -> dict[str, Any]:
    """The image cannot be pulled: Pending, not Ready, waiting in ImagePullBackOff."""
    return _waiting(pod, host_ip, pod_ip, "ImagePullBackOff", f'Back-off pulling image "{image}"', True, started)


def sandbox_failed(pod: dict[str, Any], host_ip: str, started: str | None = None) -> dict[str, Any]:
    """The pod's network could not be set up: Pending, containers waiting in ContainerCreating."""
    return _waiting(pod, host_ip, None, "ContainerCreating", None, False, started)


def admission_message(resource: str, requested: int = 1, available: int = 0) -> str:
    """The device manager's Allocate failure, as ``UnexpectedAdmissionError`` words it."""
    return (f"Allocate failed due to requested number of devices unavailable for {resource}. "
            f"Requested: {requested}, Available: {available}, which is unexpected")


def rejected(pod: dict[str, Any], reason: str, message: str) -> dict[str, Any]:
    """``kubelet.rejectPod``: phase Failed, the reason, ``Pod was rejected: <message>``."""
    return {"phase": "Failed", "reason": reason, "message": f"Pod was rejected: {message}",
            "startTime": now_rfc3339(), "qosClass": (pod.get("status") or {}).get("qosClass", "BestEffort")}


def sandbox_failure(pod: dict[str, Any], words: str, network: str | None = None) -> str:
    """FailedCreatePodSandBox as kubelet words it, wrapping the runtime's CNI library, wrapping multus: ``words`` are
    multus' own (``network`` None) or the plugin's while adding ``network``."""
    sandbox = _hex(f"{_meta(pod).get('uid')}/sandbox", 64)
    ref = f"{_meta(pod).get('namespace')}/{_meta(pod).get('name')}/{_meta(pod).get('uid')}"
    inner = (f"[{ref}:{network}]: error adding container to network \"{network}\": {words}" if network
             else f"Multus: [{ref}]: {words}")
    return (f'Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for sandbox '
            f'"{sandbox}": plugin type="multus" name="multus-cni-network" failed (add): {inner}')


def sandbox_error(pod: dict[str, Any], network: str) -> str:
    """The FailedCreatePodSandBox words when nv-ipam's node daemon is not running on the node."""
    return sandbox_failure(pod, "failed to connect to nv-ipam daemon: dial unix /var/lib/cni/nv-ipam/daemon.sock: "
                                "connect: no such file or directory", network)


def definition_missing(network: str) -> str:
    """Multus' words when a requested network has no NetworkAttachmentDefinition (``<namespace>/<name>``)."""
    namespace, _, name = network.rpartition("/")
    return ("error loading k8s delegates k8s args: TryLoadPodDelegates: error in getting k8s network for pod: "
            "GetNetworkDelegates: failed getting the delegate: getKubernetesDelegate: cannot find a "
            f"network-attachment-definition ({name}) in namespace ({namespace or 'default'}): "
            f'network-attachment-definitions.k8s.cni.cncf.io "{name}" not found')


def no_pool_block(pool: str, pool_type: str) -> str:
    """nv-ipam's CNI plugin when its node daemon holds no block of the pool for the node."""
    return (f'grpc request failed: rpc error: code = NotFound desc = configuration for pool "{pool}", '
            f'poolType "{pool_type}" not found')


def guid_not_valid(vf_netdev: str) -> str:
    """ib-sriov-cni's words for a VF whose GUID was never set."""
    return f'infiniBand SRI-OV CNI failed to configure VF "VF {vf_netdev} GUID is not valid"'


def completed(pod: dict[str, Any], host_ip: str, pod_ip: str | None, exit_code: int, started: str) -> dict[str, Any]:
    """Every container exited (restartPolicy Never): phase Succeeded (exit 0) or Failed, each container terminated."""
    when = now_rfc3339()
    uid = _meta(pod).get("uid") or _meta(pod).get("name", "")
    reason = "Completed" if exit_code == 0 else "Error"
    statuses = [{
        "name": c.get("name"), "state": {"terminated": {"exitCode": exit_code, "reason": reason, "startedAt": started,
                                                        "finishedAt": when,
                                                        "containerID": "containerd://" + _hex(f"{uid}/{c.get('name')}",
                                                                                              64)}},
        "lastState": {}, "ready": False, "restartCount": 0, "image": c.get("image"),
        "imageID": image_id(str(c.get("image", ""))),
        "containerID": "containerd://" + _hex(f"{uid}/{c.get('name')}", 64), "started": False,
    } for c in containers(pod)]
    return {
        "phase": "Succeeded" if exit_code == 0 else "Failed",
        "conditions": [_condition("PodReadyToStartContainers", False, when), _condition("Initialized", True, started),
                       _condition("Ready", False, when, "PodCompleted"),
                       _condition("ContainersReady", False, when, "PodCompleted"),
                       _condition("PodScheduled", True, started)],
        **_ips(pod, host_ip, pod_ip), "startTime": started, "containerStatuses": statuses,
        "qosClass": (pod.get("status") or {}).get("qosClass", "BestEffort"),
    }


def event(obj: dict[str, Any], *, reason: str, message: str, kind: str = "Warning", component: str = "kubelet",
          host: str | None = None, count: int = 1, field_path: str | None = None) -> dict[str, Any]:
    """A core/v1 Event about ``obj`` as the legacy recorder (kubelet) writes it."""
    metadata = _meta(obj)
    when = now_rfc3339()
    involved = {"apiVersion": obj.get("apiVersion", "v1"), "kind": obj.get("kind", "Pod"),
                "name": metadata.get("name"), "namespace": metadata.get("namespace"), "uid": metadata.get("uid"),
                "resourceVersion": metadata.get("resourceVersion"), "fieldPath": field_path}
    source = {"component": component} | ({"host": host} if host else {})
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{metadata.get('name')}.{time.time_ns() + next(_EVENT_IDS):x}",
                     "namespace": metadata.get("namespace") or "default"},
        "involvedObject": {k: v for k, v in involved.items() if v is not None},
        "reason": reason, "message": message, "type": kind, "source": source,
        "firstTimestamp": when, "lastTimestamp": when, "count": count,
        "reportingComponent": component, "reportingInstance": host or "",
    }

"""The twin's Kubernetes API server: what kube-apiserver answers, over real HTTPS, to the client and kubectl.

- ``api_twin``: ``ApiTwin``, the server on its own loop and thread, its kubeconfig, and direct object access
  for the rest of the twin; it registers the bundled CRDs (``crds/``);
- ``server``: the HTTP face (kmock's KubernetesEmulator, extended to act like kube-apiserver);
- ``store``: the served resources and the objects; ``selectors``: label and field selectors; ``patch``: the
  PATCH flavours; ``rbac``: authorization; ``tables``: server-side printing for ``kubectl get``;
- ``pod_exec`` and ``pod_logs``: the pods' ``exec`` and ``log`` subresources, as the node's kubelet answers them;
- ``tls``: the throwaway CA and serving certificate.

Nothing here knows about the operators the twin emulates: those are ``ibconform.twin.controllers``.
"""

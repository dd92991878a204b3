"""The twin's controllers: what the cluster's operators, scheduler and kubelets make of the scenario's truth.

- ``cluster``: ``ClusterEmulation``, which fills the API server with every object the scenario implies and
  re-derives them when a client writes; it wires the others;
- ``operator``: the SR-IOV Network Operator, its config daemon and device plugin;
- ``ipam``: the Network Operator's NicClusterPolicy and what it deploys (nv-ipam, Multus, CNI plugins);
- ``scheduler``: kube-scheduler's filters and words; ``kubelet``: pod statuses and events;
- ``workloads``: the operators' DaemonSets and Deployments and their pods.

They read the hardware (``ibconform.twin.machines``) and the cluster-side truth (``ibconform.twin.kube``) and
write through the API server (``ibconform.twin.apiserver``), which knows nothing of them.
"""

"""Which connections the rendered NetworkPolicies allow, by the rules of the NetworkPolicy API.

Enough of the API for these manifests: label selectors (matchLabels, matchExpressions), pod and namespace
peers, numeric ports. A namespace's labels are taken to be ``kubernetes.io/metadata.name`` only, as the API
server sets it on every namespace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass
class Endpoint:
    """A pod (namespace and labels) or, with ``namespace`` None, an address outside the cluster."""

    namespace: str | None
    labels: dict[str, str] = field(default_factory=dict)


OUTSIDE = Endpoint(None)


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A Kubernetes label selector; an empty one selects everything."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        present = key in labels
        ok = {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[op]
        if not ok:
            return False
    return True


def _peer_matches(peer: dict[str, Any], policy_namespace: str, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        return other.namespace is None
    if other.namespace is None:
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], {NAME_LABEL: other.namespace}):
            return False
    elif other.namespace != policy_namespace:
        return False
    return "podSelector" not in peer or selects(peer["podSelector"], other.labels)


def _port_matches(ports: list[dict[str, Any]] | None, port: int, protocol: str) -> bool:
    if not ports:
        return True
    return any(p.get("port") in (None, port) and p.get("protocol", "TCP") == protocol for p in ports)


def _policy_types(policy: dict[str, Any]) -> list[str]:
    spec = policy["spec"]
    if "policyTypes" in spec:
        return list(spec["policyTypes"])
    return ["Ingress", *(["Egress"] if "egress" in spec else [])]


def _allowed_one_way(
    policies: list[dict[str, Any]], pod: Endpoint, other: Endpoint, port: int, protocol: str, ingress: bool
) -> bool:
    kind = "Ingress" if ingress else "Egress"
    relevant = [
        p
        for p in policies
        if p["metadata"].get("namespace") == pod.namespace
        and kind in _policy_types(p)
        and selects(p["spec"].get("podSelector"), pod.labels)
    ]
    if not relevant:
        return True  # not isolated in this direction
    for policy in relevant:
        for rule in policy["spec"].get("ingress" if ingress else "egress") or []:
            peers = rule.get("from" if ingress else "to")
            namespace = str(policy["metadata"]["namespace"])
            if (not peers or any(_peer_matches(peer, namespace, other) for peer in peers)) and _port_matches(
                rule.get("ports"), port, protocol
            ):
                return True
    return False


def allowed(
    policies: list[dict[str, Any]], source: Endpoint, target: Endpoint, port: int, protocol: str = "TCP"
) -> bool:
    """Whether ``source`` may open a connection to ``target``'s ``port``: egress of one, ingress of the other."""
    egress = source.namespace is None or _allowed_one_way(policies, source, target, port, protocol, ingress=False)
    ingress = target.namespace is None or _allowed_one_way(policies, target, source, port, protocol, ingress=True)
    return egress and ingress

"""Cross-reference checks on a rendered overlay: each function returns the broken references it finds.

Kustomize rewrites names it knows about (a Deployment renamed by namePrefix is renamed in a Service's
selector) but not names that a controller derives later: KServe names a predictor's workload
``<InferenceService>-predictor``, and KEDA, the HTTP add-on, Knative Triggers and the dispatchers refer to that
derived name by string. These checks recompute every derived name from the rendered objects.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from events.contract import ERROR_TYPE, REQUEST_TYPE, RESULT_TYPE
from events.settings import EventSettings
from functions import catalog
from tests.manifests.rendering import Rendered, deployment_mode, predictor_name, ref

FUNCTION_LABEL = "wakeserve.dev/function"
KSERVE_SERVICE_PORT = 80  # KServe's Standard-mode Service: port 80 -> the first container port
HTTP_ADDON_SCALER = "keda-add-ons-http-external-scaler.keda:9090"
CLOUDEVENTS_ROUTE = "/cloudevents"
OPENAI_PREFIX = "/openai"  # a generative function's OpenAI-compatible routes (/openai/v1/...)


def _namespace(obj: dict[str, Any]) -> str:
    return str(obj["metadata"].get("namespace", "default"))


def predictors(r: Rendered, mode: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(namespace, predictor workload name) -> InferenceService, for the InferenceServices in ``mode``."""
    return {
        (_namespace(isvc), predictor_name(isvc)): isvc
        for isvc in r.of_kind("InferenceService")
        if deployment_mode(isvc) == mode
    }


def function_of(obj: dict[str, Any]) -> str | None:
    return (obj["metadata"].get("labels") or {}).get(FUNCTION_LABEL)


def expected_topics(settings: EventSettings, function: str) -> tuple[str, str]:
    return settings.topics.requests(function), settings.topics.group(function)


def scale_target_errors(r: Rendered) -> list[str]:
    """Every ScaledObject scales a Deployment that will exist: a rendered one, or a Standard-mode predictor's."""
    deployments = {(_namespace(d), d["metadata"]["name"]): d for d in r.of_kind("Deployment")}
    standard = predictors(r, "Standard")
    errors = []
    for so in r.of_kind("ScaledObject"):
        target = so["spec"]["scaleTargetRef"]
        if target.get("kind", "Deployment") != "Deployment" or target.get("apiVersion", "apps/v1") != "apps/v1":
            errors.append(f"{ref(so)}: scales {target.get('kind')}, expected a Deployment")
            continue
        key = (_namespace(so), target["name"])
        if key in deployments:
            containers = deployments[key]["spec"]["template"]["spec"]["containers"]
        elif key in standard:
            containers = standard[key]["spec"]["predictor"]["containers"]
        else:
            errors.append(
                f"{ref(so)}: scaleTargetRef {target['name']!r} is neither a rendered Deployment nor the "
                f"predictor Deployment of a Standard-mode InferenceService ({sorted(n for _, n in standard)})"
            )
            continue
        names = [c["name"] for c in containers]
        source = target.get("envSourceContainerName", names[0])
        if source not in names:
            errors.append(f"{ref(so)}: envSourceContainerName {source!r} is not a container of {target['name']}")
            continue
        container = containers[names.index(source)]
        variables = {e["name"] for e in container.get("env") or []}
        for source_ref in container.get("envFrom") or []:
            config = r.config_maps().get((source_ref.get("configMapRef") or {}).get("name", ""), {})
            variables |= set(config)
        for trigger in so["spec"]["triggers"]:
            wanted = {v for k, v in trigger["metadata"].items() if k.endswith("FromEnv")}
            for variable in sorted(wanted - variables):
                errors.append(
                    f"{ref(so)}: {trigger['type']} trigger reads {variable} from {target['name']}/{source}, "
                    "which does not set it"
                )
    return errors


def kafka_trigger_errors(r: Rendered, settings: EventSettings) -> list[str]:
    """Kafka triggers watch the topic and group the code uses for their function; one per ScaledObject, first."""
    functions = {isvc["metadata"]["name"] for isvc in r.of_kind("InferenceService")}
    errors = []
    for so in r.of_kind("ScaledObject"):
        function = function_of(so)
        kafka = [t for t in so["spec"]["triggers"] if t["type"] == "kafka"]
        if function not in functions:
            errors.append(f"{ref(so)}: function label {function!r} names no rendered InferenceService")
        if len(kafka) != 1 or so["spec"]["triggers"][0]["type"] != "kafka":
            errors.append(
                f"{ref(so)}: expected exactly one kafka trigger, first (`wakeserve up` and the SASL/TLS "
                "component rely on it)"
            )
            continue
        meta = kafka[0]["metadata"]
        topic, group = expected_topics(settings, str(function))
        if (meta.get("topic"), meta.get("consumerGroup")) != (topic, group):
            errors.append(
                f"{ref(so)}: watches {meta.get('topic')}/{meta.get('consumerGroup')}, the code uses {topic}/{group}"
            )
    return errors


def external_scaler_errors(r: Rendered, settings: EventSettings) -> list[str]:
    """Triggers on the wakeserve scaler reach its rendered Service and measure what the kafka trigger does."""
    from scalers.external import resolve
    from scalers.keda import KafkaTrigger

    errors = []
    for so in r.of_kind("ScaledObject"):
        triggers = so["spec"]["triggers"]
        kafka = [KafkaTrigger.from_metadata(t["metadata"]) for t in triggers if t["type"] == "kafka"]
        for t in triggers:
            meta = t["metadata"]
            if t["type"] not in ("external", "external-push") or "function" not in meta:
                continue
            host, _, port = meta["scalerAddress"].rpartition(":")
            name, _, rest = host.partition(".")
            svc = r.find("Service", name, rest.split(".")[0] or _namespace(so))
            if svc is None or int(port) not in {p["port"] for p in svc["spec"]["ports"]}:
                errors.append(f"{ref(so)}: scalerAddress {meta['scalerAddress']} is not a rendered Service port")
            if meta["function"] != function_of(so):
                errors.append(f"{ref(so)}: the wakeserve scaler trigger measures {meta['function']}")
            if kafka and resolve(meta, settings.topics).trigger != kafka[0]:
                errors.append(f"{ref(so)}: the wakeserve scaler trigger and the kafka trigger measure different lags")
    return errors


def http_addon_errors(r: Rendered) -> list[str]:
    """HTTPScaledObjects route to a Standard predictor's Service, and an external-push trigger reads each."""
    standard = predictors(r, "Standard")
    scaled = {(_namespace(so), so["metadata"]["name"]): so for so in r.of_kind("ScaledObject")}
    errors = []
    for hso in r.of_kind("HTTPScaledObject"):
        ns, name, target = _namespace(hso), hso["metadata"]["name"], hso["spec"]["scaleTargetRef"]
        isvc = standard.get((ns, target.get("name", "")))
        if isvc is None or target.get("service") != target.get("name"):
            errors.append(f"{ref(hso)}: scaleTargetRef {target} is not a Standard-mode predictor and its Service")
            continue
        function = isvc["metadata"]["name"]
        prefixes = [f"/v2/models/{function}", *([OPENAI_PREFIX] if catalog.is_generative(function) else [])]
        if hso["spec"].get("pathPrefixes") != prefixes:
            errors.append(f"{ref(hso)}: pathPrefixes should be {prefixes}")
        if target.get("port") != KSERVE_SERVICE_PORT:
            errors.append(f"{ref(hso)}: KServe's predictor Service listens on {KSERVE_SERVICE_PORT}")
        if (hso["metadata"].get("annotations") or {}).get(
            "httpscaledobject.keda.sh/skip-scaledobject-creation"
        ) != "true":
            errors.append(f"{ref(hso)}: without skip-scaledobject-creation the add-on makes a second ScaledObject")
        if (ns, name) in scaled:
            errors.append(f"{ref(hso)}: shares its name with a ScaledObject, which the add-on would delete")
        readers = [
            so
            for so in scaled.values()
            if so["spec"]["scaleTargetRef"]["name"] == target["name"]
            and any(
                t["type"] == "external-push"
                and t["metadata"].get("httpScaledObject") == name
                and t["metadata"].get("scalerAddress") == HTTP_ADDON_SCALER
                for t in so["spec"]["triggers"]
            )
        ]
        if len(readers) != 1:
            errors.append(
                f"{ref(hso)}: {len(readers)} ScaledObjects of {target['name']} read it through "
                f"{HTTP_ADDON_SCALER}; expected 1"
            )
            continue
        so = readers[0]["spec"]
        bounds = (so.get("minReplicaCount", 0), so.get("maxReplicaCount", 100))
        if (hso["spec"]["replicas"]["min"], hso["spec"]["replicas"]["max"]) != bounds:
            errors.append(f"{ref(hso)}: replicas differ from its ScaledObject's {bounds}")
    # The OpenAI routes name the model in the body, not the path: one function per host can own them.
    for host in {h for hso in r.of_kind("HTTPScaledObject") for h in hso["spec"]["hosts"]}:
        owners = [
            ref(hso)
            for hso in r.of_kind("HTTPScaledObject")
            if host in hso["spec"]["hosts"] and OPENAI_PREFIX in hso["spec"].get("pathPrefixes", [])
        ]
        if len(owners) > 1:
            errors.append(f"{host}{OPENAI_PREFIX} is routed to {len(owners)} functions: {owners}")
    for so in scaled.values():
        for t in so["spec"]["triggers"]:
            name = t["metadata"].get("httpScaledObject")
            if name is not None and r.find("HTTPScaledObject", name, _namespace(so)) is None:
                errors.append(f"{ref(so)}: trigger reads HTTPScaledObject {name!r}, which is not rendered")
    return errors


def dispatcher_errors(r: Rendered) -> list[str]:
    """Each `wakeserve dispatch F --target-url URL` calls the Knative Service of a Knative-mode predictor F."""
    knative = predictors(r, "Knative")
    errors = []
    for obj, _, container in r.containers():
        args = container.get("args") or []
        if obj["kind"] != "Deployment" or args[:1] != ["dispatch"]:
            continue
        function, url = args[1], args[args.index("--target-url") + 1]
        host = urlsplit(url).hostname or ""
        name, _, rest = host.partition(".")
        namespace = rest.split(".")[0] if rest else _namespace(obj)
        isvc = knative.get((namespace, name))
        if isvc is None or isvc["metadata"]["name"] != function:
            errors.append(
                f"{ref(obj)}: dispatches {function} to {url}, which is not the Knative Service of a "
                f"Knative-mode InferenceService {function}"
            )
    return errors


def eventing_errors(r: Rendered, settings: EventSettings) -> list[str]:
    """Triggers: a rendered Broker, filters on the contract's types, subscribers that exist and routes."""
    knative = predictors(r, "Knative")
    functions = {isvc["metadata"]["name"] for isvc in knative.values()}
    sinks = {(_namespace(s), s["metadata"]["name"]): s for s in r.of_kind("KafkaSink")}
    errors = []
    routed: dict[str, set[str]] = {}
    for trigger in r.of_kind("Trigger"):
        ns, spec = _namespace(trigger), trigger["spec"]
        if r.find("Broker", spec["broker"], ns) is None:
            errors.append(f"{ref(trigger)}: broker {spec['broker']!r} is not rendered")
        attributes = (spec.get("filter") or {}).get("attributes") or {}
        subscriber = spec["subscriber"]
        target = subscriber.get("ref") or {}
        if target.get("kind") == "Service" and target.get("apiVersion") == "serving.knative.dev/v1":
            isvc = knative.get((target.get("namespace", ns), target["name"]))
            if isvc is None:
                errors.append(f"{ref(trigger)}: subscriber {target['name']} is not a Knative-mode predictor")
                continue
            function = isvc["metadata"]["name"]
            if attributes != {"type": REQUEST_TYPE, "model": function}:
                errors.append(f"{ref(trigger)}: filter {attributes} should be type={REQUEST_TYPE}, model={function}")
            if subscriber.get("uri") != CLOUDEVENTS_ROUTE:
                errors.append(
                    f"{ref(trigger)}: delivers to {subscriber.get('uri')!r}, the route is {CLOUDEVENTS_ROUTE}"
                )
            routed.setdefault(REQUEST_TYPE, set()).add(function)
        elif target.get("kind") == "KafkaSink":
            sink = sinks.get((target.get("namespace", ns), target["name"]))
            if sink is None:
                errors.append(f"{ref(trigger)}: KafkaSink {target['name']!r} is not rendered")
            elif sink["spec"]["topic"] != settings.results_topic or set(attributes) != {"type"}:
                errors.append(f"{ref(trigger)}: replies must go to {settings.results_topic}, filtered on type only")
            else:
                routed.setdefault(attributes["type"], set())
        else:
            errors.append(f"{ref(trigger)}: unexpected subscriber {subscriber}")
    if r.of_kind("Trigger"):
        if routed.get(REQUEST_TYPE, set()) != functions:
            errors.append(
                f"request Triggers cover {sorted(routed.get(REQUEST_TYPE, set()))}, functions are {sorted(functions)}"
            )
        for reply in (RESULT_TYPE, ERROR_TYPE):
            if reply not in routed:
                errors.append(f"no Trigger routes {reply} replies to the results topic")
    for broker in r.of_kind("Broker"):
        dead = ((broker["spec"].get("delivery") or {}).get("deadLetterSink") or {}).get("ref") or {}
        sink = sinks.get((_namespace(broker), dead.get("name", "")))
        if sink is None or sink["spec"]["topic"] != settings.deadletter_topic:
            errors.append(f"{ref(broker)}: dead letters should go to a KafkaSink on {settings.deadletter_topic}")
    return errors


def service_errors(r: Rendered) -> list[str]:
    """Every Service selects the pods of one rendered Deployment and targets a port they declare."""
    errors = []
    for svc in r.of_kind("Service"):
        selector = svc["spec"].get("selector") or {}
        pods = [
            d["spec"]["template"]
            for d in r.of_kind("Deployment")
            if _namespace(d) == _namespace(svc)
            and selector.items() <= (d["spec"]["template"]["metadata"].get("labels") or {}).items()
        ]
        if len(pods) != 1:
            errors.append(f"{ref(svc)}: selector {selector} matches {len(pods)} Deployments")
            continue
        ports = {p.get("name") for c in pods[0]["spec"]["containers"] for p in c.get("ports") or []}
        ports |= {p["containerPort"] for c in pods[0]["spec"]["containers"] for p in c.get("ports") or []}
        for port in svc["spec"]["ports"]:
            if port.get("targetPort", port["port"]) not in ports:
                errors.append(f"{ref(svc)}: targetPort {port.get('targetPort')} is not a container port")
    return errors

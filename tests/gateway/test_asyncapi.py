"""docs/asyncapi.yaml describes what a real gateway publishes, and the event payload is the shipped schema.

First the document's shape (AsyncAPI 3.0: required fields, every channel with
an address and messages, every operation on a channel of the document). Then
a real gateway (supervisor, store, uplink process, a real mosquitto) runs with
the simulator's probe, a driver crash, a telemetry reading, an evidence file
and two commands; every message a subscriber to `anfang/v1/#` receives must be
on a channel of the document and match that channel's payload schema, and
every channel the gateway sends on must have been seen.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.events import event_schema
from gateway.lanes import TelemetryReading
from sim.broker import LocalBroker
from tests.gateway.gw_helpers import RunningGateway, gateway_config, probe_orders
from tests.helpers import PREFIX, Subscriber, wait_until

DOCS = Path(__file__).resolve().parents[2] / "docs"
DOC_PATH = DOCS / "asyncapi.yaml"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return yaml.safe_load(DOC_PATH.read_text(encoding="utf-8"))


def resolve(doc: dict[str, Any], ref: str) -> Any:
    """A `$ref` of the document: `#/a/b` inside it, or a JSON file relative to it."""
    target, _, pointer = ref.partition("#")
    node: Any = json.loads((DOC_PATH.parent / target).read_text(encoding="utf-8")) if target else doc
    for part in filter(None, pointer.split("/")):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def deref(doc: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = resolve(doc, node["$ref"])
    return node


def channel_pattern(channel: dict[str, Any]) -> re.Pattern[str]:
    """The channel's address as a regex: each `{param}` one topic level (or one of its enum)."""
    params = channel.get("parameters", {})

    def level(m: re.Match[str]) -> str:
        enum = params.get(m.group(1), {}).get("enum")
        return "(?:" + "|".join(map(re.escape, enum)) + ")" if enum else "[^/+#]+"

    return re.compile(re.sub(r"\\\{(\w+)\\\}", level, re.escape(channel["address"])) + "$")


def payload_schema(doc: dict[str, Any], channel: dict[str, Any]) -> dict[str, Any]:
    (message,) = channel["messages"].values()
    return deref(doc, deref(doc, message)["payload"])


def test_document_is_asyncapi_3_shaped(doc: dict[str, Any]) -> None:
    assert str(doc["asyncapi"]).startswith("3.0.")
    assert doc["info"]["title"] and doc["info"]["version"]
    for name, server in doc["servers"].items():
        assert server["host"] and server["protocol"] == "mqtt", name
    for name, channel in doc["channels"].items():
        assert "address" in channel and channel["messages"], f"channel {name} needs an address and messages"
        if channel["address"] is not None:
            assert channel["address"].startswith("anfang/v1/{site}/{gateway}/"), name
            named = set(re.findall(r"\{(\w+)\}", channel["address"]))
            assert named == set(channel.get("parameters", {})), f"channel {name}: parameters {named}"
        for message in channel["messages"].values():
            assert "payload" in deref(doc, message), f"channel {name}: a message without payload"
    for name, op in doc["operations"].items():
        assert op["action"] in ("send", "receive"), name
        ref = op["channel"]["$ref"]
        assert ref.startswith("#/channels/") and resolve(doc, ref) in doc["channels"].values(), name
        for message in op.get("messages", []):
            assert message["$ref"].startswith(ref + "/messages/"), f"operation {name}: a message of another channel"
            resolve(doc, message["$ref"])
        if "reply" in op:
            reply_ref = op["reply"]["channel"]["$ref"]
            resolve(doc, reply_ref)
            for message in op["reply"]["messages"]:
                assert message["$ref"].startswith(reply_ref + "/messages/")
                resolve(doc, message["$ref"])
    for schema in (payload_schema(doc, c) for c in doc["channels"].values()):
        jsonschema.Draft202012Validator.check_schema(schema)


def test_event_payload_is_the_shipped_event_schema(doc: dict[str, Any]) -> None:
    shipped = json.loads((DOCS.parent / "gateway" / "event.schema.json").read_text(encoding="utf-8"))
    assert payload_schema(doc, doc["channels"]["event"]) == shipped == event_schema()


def test_a_running_gateway_publishes_only_what_the_document_describes(
        doc: dict[str, Any], tmp_path: Path, broker: LocalBroker) -> None:
    channels = {name: c for name, c in doc["channels"].items() if c["address"] is not None}
    patterns = {name: channel_pattern(c) for name, c in channels.items()}
    sent_on = {op["channel"]["$ref"].rsplit("/", 1)[1] for op in doc["operations"].values()
               if op["action"] == "send"} & set(channels)
    sub = Subscriber(broker.host, broker.port, ["anfang/v1/#", "test/replies/#"])
    resources: dict[str, Any] = {}
    orders = probe_orders(resources, "p")
    cfg = gateway_config(tmp_path / "gw", broker, probes=[{"name": "p", "interval": 0.05}])
    try:
        with RunningGateway(cfg, resources=resources) as gw:
            sup = gw.supervisor
            first = sub.wait_events(lambda evs: len(evs) >= 3)[0]
            sup.telemetry.put(TelemetryReading("fire_pump", "pump-1", datetime.now(timezone.utc),
                                               {"pressure_bar": 6.1}))
            snapshot = tmp_path / "snapshot.jpg"
            snapshot.write_bytes(b"\xff\xd8\xff\xe0 not really a picture \xff\xd9")
            assert sup.evidence is not None
            sup.evidence.add(first["id"], snapshot, "image/jpeg")
            orders.put(("crash", {}))
            # commands are answered while connected (as the gateway process knows it)
            wait_until(lambda: sup.forwarder is not None and sup.forwarder.stats.connected, 10, message="connected")
            sub.client.publish(f"{PREFIX}/cmd/ping", b"", qos=1)       # no Response Topic: reply/ping
            props = Properties(PacketTypes.PUBLISH)
            props.ResponseTopic = "test/replies/health"
            props.CorrelationData = b"c-1"
            sub.client.publish(f"{PREFIX}/cmd/health", b"{}", qos=1, properties=props)
            sub.client.publish(f"{PREFIX}/cmd/no_such_command", b"{}", qos=1, properties=props)
            kinds = ("/status", "/health", "/telemetry/", "/evidence/", "/reply/ping")
            wait_until(lambda: all(sub.received(k) for k in kinds)
                       and any(e["type"] == "driver_fault" for e in sub.events())
                       and len(sub.received("test/replies/")) >= 2, 30,
                       message=lambda: f"every kind of message; topics so far {sorted({m.topic for m in sub.received()})}")
    finally:
        sub.close()

    validators = {name: jsonschema.Draft202012Validator(payload_schema(doc, c)) for name, c in doc["channels"].items()}
    checked: dict[str, int] = {}
    for m in sub.received():
        if m.topic.startswith("test/replies/"):
            name = "responseTopic"
        else:
            names = [n for n, p in patterns.items() if p.match(m.topic)]
            assert len(names) == 1, f"{m.topic} matches channels {names} of docs/asyncapi.yaml"
            name = names[0]
        message = deref(doc, next(iter(doc["channels"][name]["messages"].values())))
        if message.get("contentType", doc["defaultContentType"]) == "application/json":
            value = {} if name == "command" and not m.payload.strip() else m.json()   # empty command = {}
            errors = sorted(validators[name].iter_errors(value), key=str)
            assert not errors, f"{m.topic}: {errors[0].message} in {m.payload[:300]!r}"
        checked[name] = checked.get(name, 0) + 1
    assert set(checked) >= sent_on | {"responseTopic"}, checked
    replies = [m.json() for m in sub.received("test/replies/")]
    assert replies[0]["ok"] is True and replies[1]["ok"] is False
    evidence = sub.received("/evidence/")[0]
    assert evidence.topic == f"{PREFIX}/evidence/{first['id']}" and evidence.payload == snapshot.read_bytes()
    assert evidence.properties.ContentType == "image/jpeg"
    assert set(evidence.properties.UserProperty) == {("name", "snapshot.jpg"), ("event_id", first["id"])}

"""Test helpers: polling with a deadline, an MQTT subscriber that records what arrives, a command
request over MQTT 5, and the delivery check of a run's events."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

PREFIX = "anfang/v1/s1/gw1"     # the topic prefix of the tests' gateways (site s1, gateway gw1)


def poll_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.01) -> Any:
    """Poll `predicate` until it returns something truthy; its last value at the deadline
    (falsy) when it never did. For callers that report a shortfall rather than fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01,
               message: str | Callable[[], str] = "condition") -> Any:
    """Poll `predicate` until it returns something truthy; fail the test at the deadline."""
    value = poll_until(predicate, timeout, interval)
    if not value:
        text = message() if callable(message) else message
        raise AssertionError(f"timed out after {timeout} s waiting for {text}")
    return value


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    properties: Any

    def json(self) -> Any:
        return json.loads(self.payload)


class Subscriber:
    """A real MQTT client subscribed to `topics`; records every message in arrival order."""

    def __init__(self, host: str, port: int, topics: list[str] | str, *, qos: int = 1,
                 tls: dict[str, str] | None = None, persistent_id: str | None = None,
                 auth: tuple[str, str] | None = None) -> None:
        """`persistent_id`: keep a session on the broker under that client id (MQTT 3.1.1,
        clean_session false), so QoS 1 messages published while this subscriber is cut off
        (broker restarted with persistence) are still delivered to it."""
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.topics = [topics] if isinstance(topics, str) else topics
        if persistent_id:
            self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=persistent_id,
                                      protocol=MQTTProtocolVersion.MQTTv311, clean_session=False)
        else:
            self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        if tls:
            self.client.tls_set(**tls)
        if auth:
            self.client.username_pw_set(*auth)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 1)
        self.client.connect(host, port, keepalive=10)
        self.client.loop_start()
        wait_until(self._subscribed.is_set, 10, message="subscription")
        self.qos = qos

    def _on_connect(self, client: mqtt.Client, *_a: Any) -> None:
        for t in self.topics:
            client.subscribe(t, qos=1)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(Received(msg.topic, bytes(msg.payload), msg.retain,
                                          getattr(msg, "properties", None)))

    def received(self, topic_contains: str = "") -> list[Received]:
        with self._lock:
            return [m for m in self.messages if topic_contains in m.topic]

    def events(self) -> list[dict[str, Any]]:
        return [m.json() for m in self.received("/event/")]

    def wait_events(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 10.0) -> list[dict[str, Any]]:
        return wait_until(lambda: (lambda evs: evs if predicate(evs) else None)(self.events()), timeout,
                          message=lambda: f"events; have {len(self.events())}")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def request(host: str, port: int, topic: str, payload: bytes, *, reply_topic: str | None = None,
            correlation: bytes = b"corr-1", auth: tuple[str, str] | None = None,
            timeout: float = 10.0) -> Received | None:
    """A command as an upstream sends it (MQTT 5 Response Topic and Correlation Data);
    the reply, or None if none came within `timeout`."""
    reply_topic = reply_topic or f"test/replies/{uuid.uuid4().hex}"
    sub = Subscriber(host, port, reply_topic, auth=auth)
    try:
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = reply_topic
        props.CorrelationData = correlation
        sub.client.publish(topic, payload, qos=1, properties=props).wait_for_publish(5)
        replies = poll_until(lambda: sub.received(reply_topic), timeout)
        return replies[0] if replies else None
    finally:
        sub.close()


def seq_report(events: list[dict[str, Any]]) -> tuple[set[int], list[int]]:
    """(distinct seqs, seqs missing between 1 and the max and not named by an `events_dropped`),
    by the gateway's own delivery verdict (sim/chaos.py)."""
    from sim.chaos import check_events

    return {e["seq"] for e in events}, check_events(events).missing


def child_pids(pid: int) -> list[int]:
    """The processes `pid` started (all its threads'), from /proc."""
    kids: list[int] = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/children") as fh:
            kids += [int(k) for k in fh.read().split()]
    return kids


def process_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False

"""What an upstream receives from a simulated gateway: a persistent MQTT session on its event topics.

`anfang sim` prints each event it receives, `anfang chaos` records them for
its verdict. Both need the same subscriber: a persistent session (MQTT 3.1.1,
clean_session false), so that the events the gateway forwards while this
subscriber is reconnecting after a broker outage are kept for it by the
broker and nothing an upstream would get is missed; events handed over in
arrival order, on paho's network thread.
"""

from __future__ import annotations

import json
import random
import threading
from typing import Any, Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion


class EventSubscriber:
    """Calls `on_event(event)` for every event published under `{prefix}/event/#`; a payload that is
    not JSON goes to `on_malformed(payload)` if given, else is skipped."""

    def __init__(self, host: str, port: int, prefix: str, on_event: Callable[[dict[str, Any]], None], *,
                 name: str, on_malformed: Callable[[bytes], None] | None = None,
                 reconnect_max_s: float = 2.0, keepalive_s: int = 15) -> None:
        self.host, self.port = host, port
        self.on_event = on_event
        self.on_malformed = on_malformed
        self.keepalive_s = keepalive_s
        self.count = 0                       # messages received, malformed ones included
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{random.randrange(1 << 30)}",
                                  protocol=MQTTProtocolVersion.MQTTv311, clean_session=False)
        self.client.on_connect = lambda c, *_a: c.subscribe(f"{prefix}/event/#", qos=1)
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(reconnect_max_s / 10, reconnect_max_s)

    def start(self) -> "EventSubscriber":
        self.client.connect_async(self.host, self.port, keepalive=self.keepalive_s)
        self.client.loop_start()
        return self

    def wait_subscribed(self, timeout: float) -> bool:
        return self._subscribed.wait(timeout)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.count += 1
        try:
            event = json.loads(msg.payload)
        except ValueError:
            if self.on_malformed is not None:
                self.on_malformed(bytes(msg.payload))
            return
        self.on_event(event)

    def close(self) -> None:
        self.client.loop_stop()
        try:
            self.client.disconnect()
        except Exception:        # already gone with the broker: nothing to close
            pass

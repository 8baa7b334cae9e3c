"""The MQTT forwarder: from the durable store to the broker, in order, at least once.

One thread runs a connection at a time, and it alone drives paho: no
`loop_start()`, but paho's external-loop API (`loop_read`, `loop_write`,
`loop_misc` on `socket()`), polled by this thread together with a wake-up
socket. A publish goes straight to the socket from this thread and PUBACKs are
read by it, so no message crosses a thread and no lock is taken per event
(paho's network thread cost a wake-up and a GIL hand-off per message).
Other threads (the store after a commit, command replies) only queue and poke
the wake-up socket.

Each connection uses a fresh paho client (MQTT 5 by default, 3.1.1 as an
option) so nothing survives in paho's in-memory queue: the store is the only
queue. While connected, the thread keeps up to `inflight` events published and
unacknowledged, in `seq` order; an event leaves the store only on its PUBACK.
After a disconnect, publishing resumes at the oldest unacknowledged event, so
everything is sent again in order after an outage (duplicates possible, with
the same `id`; gaps never).

Beside the event lane: telemetry (QoS 0 by default, latest value wins, sent
every turn), evidence (spooled files, sent only while no event waits), the
retained `status` (online; offline as the last will and on a clean stop) and
the retained `health` every `health_interval` seconds.

Reconnects back off exponentially from `reconnect_min` to `reconnect_max`
seconds with full jitter.
"""

from __future__ import annotations

import collections
import json
import logging
import random
import select
import socket
import ssl
import threading
import time
from typing import Any, Callable, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

from gateway import __version__
from gateway.clock import Clock, SystemClock, iso_utc
from gateway.lanes import EvidenceItem, EvidenceSpool, TelemetryLane
from gateway.backoff import backoff_delay
from gateway.linkstate import ForwarderStats, IncomingCommand
from gateway.mqttconfig import MqttConfig
from gateway.store import StoredEvent

log = logging.getLogger(__name__)

TURN_SECONDS = 0.2
READ_AHEAD = 1000    # events read from the store at once
RESERVED_SLOTS = 4   # of the broker's Receive Maximum, kept for status, health, evidence, replies


class EventSource(Protocol):
    """Where the forwarder takes events from: committed events, in seq order.

    The gateway's `EventStore` is one (the forwarder in a thread); the uplink
    process's `StoreFollower`, reading the same file, is the other.
    """

    generation: int     # goes up after each commit that added events

    def read_after(self, seq: int, limit: int) -> list[StoredEvent]:
        """Up to `limit` committed events with seq greater than `seq`, in seq order."""

    def add_listener(self, on_commit: Callable[[], None]) -> None:
        """Have `on_commit()` called after each commit that added events (it only pokes)."""

    def ack(self, seqs: list[int]) -> None:
        """The broker acknowledged these events: they may leave the store."""


class _Flight:
    """What one session has published and awaits a PUBACK for."""

    def __init__(self) -> None:
        self.events: dict[int, int] = {}     # mid -> seq, in publish (= seq) order
        self.evidence_mid: int | None = None
        self.evidence_item: EvidenceItem | None = None


class _Session:
    """One connection's paho client and what its callbacks record (all on the forwarder thread)."""

    def __init__(self, client: mqtt.Client) -> None:
        self.client = client
        self.connack = False
        self.connect_rc: Any = None
        self.lost = False
        self.disconnect_reason = ""
        self.pubacks: collections.deque[tuple[int, Any]] = collections.deque()
        self.window = 0     # events in flight at most; set on CONNACK

    def mark_lost(self, reason: str) -> None:
        if not self.lost:
            self.disconnect_reason = self.disconnect_reason or reason
            self.lost = True


class _Waker:
    """A socket pair that other threads poke to wake the forwarder out of select()."""

    def __init__(self) -> None:
        self.closed = False
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._w.setblocking(False)

    def fileno(self) -> int:
        return self._r.fileno()

    def poke(self) -> None:
        try:
            self._w.send(b"\0")
        except OSError:      # full: a wake-up is already pending; closed: stopping
            pass

    def drain(self) -> None:
        try:
            while self._r.recv(4096):
                pass
        except OSError:
            pass

    def close(self) -> None:
        self.closed = True
        self._r.close()
        self._w.close()


class Forwarder:
    """Drains the event store to the broker; see the module docstring."""

    def __init__(self, cfg: MqttConfig, prefix: str, source: EventSource, telemetry: TelemetryLane,
                 evidence: EvidenceSpool, *, site: str, gateway: str,
                 health: Callable[[], dict[str, Any]] | None = None,
                 on_command: Callable[[IncomingCommand], None] | None = None,
                 clock: Clock | None = None, rng: random.Random | None = None) -> None:
        self.cfg = cfg
        self.prefix = prefix
        self.source = source
        self.telemetry = telemetry
        self.evidence = evidence
        self.site = site
        self.gateway = gateway
        self.health_source = health
        self.on_command = on_command
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.stats = ForwarderStats()
        self.last_progress = self.clock.monotonic()
        self._waker = _Waker()
        self._replies: collections.deque[tuple[str, bytes, bytes | None]] = collections.deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._session: _Session | None = None
        self._next_health = 0.0
        self._logged_error = ""
        self._waiting = False
        self._refusal_streak = 0     # sessions in a row that ended with a refused event
        source.add_listener(self._on_commit)

    # -- life cycle ------------------------------------------------------
    def start(self) -> None:
        if self._waker.closed:
            self._waker = _Waker()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="mqtt-forwarder", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Publish `offline`, disconnect cleanly, and stop the thread."""
        self._stop.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout)
            if not self._thread.is_alive():
                self._waker.close()

    def wake(self) -> None:
        self._waker.poke()

    def _on_commit(self) -> None:
        """Called by the store's writer after each commit that added events."""
        if self._waiting:       # a busy forwarder reads the store again anyway: no syscall per commit
            self._waker.poke()

    def health_soon(self) -> None:
        """Publish `health` at the next turn (after start-up, a driver fault...)."""
        self._next_health = 0.0
        self.wake()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def publish_reply(self, topic: str, payload: bytes, correlation: bytes | None) -> bool:
        """Queue a command reply for the current connection (QoS 1); False if not connected."""
        sess = self._session
        if sess is None or sess.lost:
            return False
        self._replies.append((topic, payload, correlation))
        self._waker.poke()
        return True

    def _send_replies(self, client: mqtt.Client) -> None:
        while self._replies:
            topic, payload, correlation = self._replies.popleft()
            props = None
            if self.cfg.protocol == "5":
                props = Properties(PacketTypes.PUBLISH)
                if correlation is not None:
                    props.CorrelationData = correlation
            client.publish(topic, payload, qos=1, properties=props)

    # -- connecting ------------------------------------------------------
    def _topic(self, suffix: str) -> str:
        return f"{self.prefix}/{suffix}"

    def _status_payload(self, state: str) -> bytes:
        return json.dumps({"state": state, "ts": iso_utc(self.clock.now()), "version": __version__,
                           "site": self.site, "gateway": self.gateway}).encode()

    def _new_client(self) -> tuple[mqtt.Client, _Session]:
        cfg = self.cfg
        proto = MQTTProtocolVersion.MQTTv5 if cfg.protocol == "5" else MQTTProtocolVersion.MQTTv311
        kwargs: dict[str, Any] = {"callback_api_version": CallbackAPIVersion.VERSION2,
                                  "client_id": cfg.client_id, "protocol": proto,
                                  "reconnect_on_failure": False}
        if proto == MQTTProtocolVersion.MQTTv311:
            kwargs["clean_session"] = True
        client = mqtt.Client(**kwargs)
        sess = _Session(client)
        client.connect_timeout = cfg.connect_timeout
        # The window is ours (`inflight`, capped by the broker's Receive Maximum);
        # paho's own limit is off: with one set, paho rescans every queued message
        # on each PUBACK, which costs more CPU than anything else per event.
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        client.will_set(self._topic("status"), self._status_payload("offline"), qos=1, retain=True)
        if cfg.username:
            client.username_pw_set(cfg.username, cfg.password.reveal() if cfg.password else None)
        if cfg.tls is not None:
            t = cfg.tls
            client.tls_set(ca_certs=str(t.ca_file) if t.ca_file else None,
                           certfile=str(t.cert_file) if t.cert_file else None,
                           keyfile=str(t.key_file) if t.key_file else None,
                           cert_reqs=ssl.CERT_REQUIRED,
                           keyfile_password=t.key_passphrase.reveal() if t.key_passphrase else None)
            client.tls_insecure_set(not t.verify_hostname)

        def on_connect(_c: Any, _u: Any, _flags: Any, rc: Any, props: Any = None) -> None:
            sess.connect_rc = rc
            receive_max = getattr(props, "ReceiveMaximum", None) if props is not None else None
            if receive_max:
                # keep a few slots for status, health, evidence and command replies
                sess.window = max(1, min(self.cfg.inflight, int(receive_max) - RESERVED_SLOTS))
            sess.connack = True

        def on_disconnect(_c: Any, _u: Any, _flags: Any, rc: Any, _props: Any = None) -> None:
            sess.mark_lost(str(rc))

        def on_publish(_c: Any, _u: Any, mid: int, rc: Any, _props: Any = None) -> None:
            sess.pubacks.append((mid, rc))

        def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
            if self.on_command is None:
                return
            name = msg.topic.rsplit("/", 1)[-1]
            props = getattr(msg, "properties", None)
            self.on_command(IncomingCommand(
                name=name, payload=bytes(msg.payload),
                response_topic=getattr(props, "ResponseTopic", None) if props else None,
                correlation=getattr(props, "CorrelationData", None) if props else None))

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_publish = on_publish
        client.on_message = on_message
        return client, sess

    def _connect(self) -> _Session:
        client, sess = self._new_client()
        sess.window = self.cfg.inflight
        try:
            client.connect(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise ConnectionError(f"cannot reach broker {self.cfg.host}:{self.cfg.port}: {exc}") from exc
        deadline = time.monotonic() + self.cfg.connect_timeout + 2
        while not sess.connack and not sess.lost and not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._pump(sess, min(left, TURN_SECONDS))
        if not sess.connack or sess.lost or sess.connect_rc is None \
                or getattr(sess.connect_rc, "is_failure", False) or sess.connect_rc != 0:
            reason = sess.connect_rc if sess.connect_rc is not None else "no CONNACK in time"
            self._close(sess)
            raise ConnectionError(f"broker {self.cfg.host}:{self.cfg.port} refused or did not answer: {reason}")
        return sess

    def _pump(self, sess: _Session, timeout: float) -> None:
        """One turn of paho's network loop, on this thread: wait up to `timeout` for
        the socket or a poke, then read (PUBACKs, commands), write, keep alive."""
        client = sess.client
        sock = client.socket()
        if sock is None:
            sess.mark_lost("socket closed")
            return
        pending = sock.pending() if isinstance(sock, ssl.SSLSocket) else 0   # TLS bytes already decrypted
        try:
            readable, writable, _ = select.select([sock, self._waker], [sock] if client.want_write() else [],
                                                  [], 0 if pending else timeout)
        except (OSError, ValueError) as exc:
            sess.mark_lost(f"socket error: {exc}")
            return
        if self._waker in readable:
            self._waker.drain()
        for step, due in ((client.loop_read, sock in readable or pending),
                          (client.loop_write, sock in writable),
                          (client.loop_misc, True)):
            if not due:
                continue
            rc = step()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or client.socket() is None:
                sess.mark_lost(mqtt.error_string(rc) if rc else "socket closed")
                return

    def _close(self, sess: _Session, graceful: bool = False) -> None:
        client = sess.client
        try:
            if graceful and not sess.lost:
                info = client.publish(self._topic("status"), self._status_payload("offline"),
                                      qos=1, retain=True)
                deadline = time.monotonic() + 2.0
                while not info.is_published() and not sess.lost and time.monotonic() < deadline:
                    self._pump(sess, 0.05)
            if client.socket() is not None:
                client.disconnect()     # written at once: this thread drives the client
        except (RuntimeError, ValueError, OSError) as exc:
            log.debug("while closing the MQTT connection: %s", exc)
        sock = client.socket()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    # -- the loop --------------------------------------------------------
    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            self.last_progress = self.clock.monotonic()
            try:
                sess = self._connect()
            except ConnectionError as exc:
                self._note_error(str(exc))
                delay = backoff_delay(attempt, self.cfg.reconnect_min, self.cfg.reconnect_max, self.rng)
                attempt += 1
                self._sleep(delay)
                continue
            attempt = 0
            self.stats.connects += 1
            self.stats.connected = True
            self.stats.connected_since = self.clock.monotonic()
            log.info("connected to MQTT broker %s:%d (MQTT %s)", self.cfg.host, self.cfg.port, self.cfg.protocol)
            self._logged_error = ""
            self._session = sess
            self.stats.window = sess.window
            try:
                self._serve(sess)
            finally:
                self._session = None
                self.stats.connected = False
                graceful = self._stop.is_set()
                if not graceful:
                    self.stats.disconnects += 1
                    self._note_error(f"connection to broker lost ({sess.disconnect_reason or 'publish failed'})")
                self._close(sess, graceful=graceful)
            if self._refusal_streak:
                # a broker that keeps refusing our events gets growing pauses, not a reconnect storm
                self._sleep(backoff_delay(self._refusal_streak - 1, self.cfg.reconnect_min,
                                          self.cfg.reconnect_max, self.rng))

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.last_progress = self.clock.monotonic()
            self._stop.wait(min(left, 1.0))

    def _note_error(self, message: str) -> None:
        self.stats.last_error = message
        if message != self._logged_error:
            log.warning("%s", message)
            self._logged_error = message

    def _serve(self, sess: _Session) -> None:
        client = sess.client
        client.publish(self._topic("status"), self._status_payload("online"), qos=1, retain=True)
        if self.on_command is not None:
            client.subscribe(self._topic("cmd/+"), qos=1)
        flight = _Flight()
        ahead: collections.deque[StoredEvent] = collections.deque()   # read from the store, not yet sent
        fetched_upto = 0
        seen_generation = -1
        self._next_health = 0.0
        try:
            while not self._stop.is_set() and not sess.lost:
                self.last_progress = self.clock.monotonic()
                # 1. acknowledgements
                if not self._take_pubacks(sess, flight):
                    return
                # 2. events, in seq order, within the window
                room = sess.window - len(flight.events)
                if room > 0 and len(ahead) < room:
                    seen_generation = self.source.generation
                    more = self.source.read_after(fetched_upto, max(READ_AHEAD, room))
                    if more:
                        ahead.extend(more)
                        fetched_upto = more[-1].seq
                sent = 0
                while sent < room and ahead:
                    ev = ahead.popleft()
                    info = client.publish(self._topic(ev.topic_suffix), ev.payload, qos=1)
                    if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                        sess.disconnect_reason = f"publish failed: {mqtt.error_string(info.rc)}"
                        return
                    flight.events[info.mid] = ev.seq
                    sent += 1
                self.stats.published += sent
                backlog = bool(ahead) or room - sent <= 0
                # 3. telemetry: latest wins, never waits for events
                for reading in self.telemetry.drain():
                    client.publish(self._topic(reading.topic_suffix),
                                   reading.payload(self.site, self.gateway), qos=self.cfg.telemetry_qos)
                    self.stats.telemetry_sent += 1
                # 4. evidence, only when no event waits
                if flight.evidence_mid is None and not flight.events and not backlog:
                    item = self.evidence.next()
                    if item is not None:
                        flight.evidence_mid = self._publish_evidence(client, item)
                        flight.evidence_item = item if flight.evidence_mid is not None else None
                self._send_replies(client)
                # 5. health
                now = self.clock.monotonic()
                if self.health_source is not None and now >= self._next_health:
                    self._next_health = now + self.cfg.health_interval
                    health = self.health_source()
                    if health is not None:
                        client.publish(self._topic("health"), json.dumps(health).encode(), qos=1, retain=True)
                # Wait only when there is nothing to do: the window is full (the socket
                # wakes us with PUBACKs), or nothing is ahead and no commit happened since
                # the last read (the store bumps `generation`, then pokes us if waiting).
                self._waiting = True    # set before the check: a commit after it will poke us
                idle = (sess.window - len(flight.events) <= 0
                        or (not ahead and self.source.generation == seen_generation))
                busy = sess.pubacks or self._replies or sess.lost or self._stop.is_set()
                self._pump(sess, TURN_SECONDS if idle and not busy else 0)
                self._waiting = False
        finally:
            # the PUBACKs that came with the last turn; then resume at the oldest event not acknowledged
            self._take_pubacks(sess, flight)

    def _take_pubacks(self, sess: _Session, flight: _Flight) -> bool:
        """Handle the PUBACKs received so far; False if the broker refused an event.

        Never drop a refused event: it stays buffered, the session ends (mosquitto
        closes it anyway) and reconnects back off until the broker's ACL or
        credentials are fixed. Nothing is lost meanwhile: it and every later event
        not yet acknowledged are sent again, in order, on the next connection.
        """
        acked: list[int] = []
        refused = False
        while sess.pubacks and not refused:
            mid, rc = sess.pubacks.popleft()
            failed = getattr(rc, "is_failure", False)
            seq = flight.events.pop(mid, None)
            if seq is not None:
                if failed:
                    self._refused(seq, rc, sess)
                    refused = True
                else:
                    acked.append(seq)
            elif mid == flight.evidence_mid and flight.evidence_item is not None:
                if failed:
                    self._note_error(f"broker refused evidence {flight.evidence_item.name}: {rc}")
                self.evidence.done(flight.evidence_item)
                self.stats.evidence_sent += 1
                flight.evidence_mid, flight.evidence_item = None, None
            elif failed:      # status, health, a reply
                self.stats.rejected += 1
                self._note_error(f"broker refused a publish: {rc} (check its ACL)")
        if acked:
            self._refusal_streak = 0
            self.source.ack(acked)
            self.stats.acked += len(acked)
            self.stats.last_seq_acked = max(self.stats.last_seq_acked, max(acked))
        return not refused

    def _refused(self, seq: int, rc: Any, sess: _Session) -> None:
        self.stats.rejected += 1
        self._refusal_streak += 1
        sess.disconnect_reason = f"broker refused event seq {seq}"
        self._note_error(f"broker refused event seq {seq}: {rc} (check its ACL); "
                         f"it stays buffered and is sent again after a reconnect")

    def _publish_evidence(self, client: mqtt.Client, item: EvidenceItem) -> int | None:
        try:
            data = item.path.read_bytes()
        except OSError as exc:
            log.error("evidence %s unreadable (%s); dropping it", item.path, exc)
            self.evidence.done(item)
            return None
        props = None
        if self.cfg.protocol == "5":
            props = Properties(PacketTypes.PUBLISH)
            props.ContentType = item.content_type
            props.UserProperty = [("name", item.name), ("event_id", item.event_id)]
        info = client.publish(self._topic(item.topic_suffix), data, qos=1, properties=props)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return None
        return info.mid

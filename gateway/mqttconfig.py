"""The `[mqtt]` section as the forwarder uses it: plain records, cheap to import.

Parsed and validated in `gateway.config`; kept apart so that the uplink
process (`gateway.uplink_child`) gets them without the config loader, the
driver discovery and their imports (a few MB of resident memory). Durations
are in seconds; their config keys end in `_s` (`keepalive_s`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.configfile import Secret


@dataclass(frozen=True)
class TlsConfig:
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    key_passphrase: Secret | None = None
    verify_hostname: bool = True


@dataclass(frozen=True)
class MqttConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    protocol: str = "5"                 # "5" or "3.1.1"
    client_id: str = ""
    keepalive: int = 15                 # [mqtt] keepalive_s
    username: str | None = None
    password: Secret | None = None
    tls: TlsConfig | None = None
    inflight: int = 200                 # events published and not yet acknowledged
    telemetry_qos: int = 0
    health_interval: float = 30.0       # health_interval_s
    reconnect_min: float = 0.5          # reconnect_min_s
    reconnect_max: float = 30.0         # reconnect_max_s
    connect_timeout: float = 5.0        # connect_timeout_s
    process: bool = True                # the connection runs in a process of its own (gateway.uplink)

"""The gateway's config file: what it holds, and its validation.

One TOML file. Gateway-wide tables are `[gateway]`, `[mqtt]` (with
`[mqtt.tls]`), `[store]` and `[supervisor]`; every other top-level key belongs
to a driver type (its entry-point name, e.g. `[[ir_beam]]`, or a key the driver
declares in `config_keys`). Each driver validates its own keys. Every problem
is reported with its full key, all at once (`anfang check-config`).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.configfile import ConfigError, Problems, Section, load_toml
from gateway.driver import Driver, discover_driver_types
from gateway.events import NAME_PATTERN
from gateway.mqttconfig import MqttConfig, TlsConfig
from gateway.store import StoreLimits

GATEWAY_TABLES = ("gateway", "mqtt", "store", "supervisor")

# Keys spelled otherwise before one spelling per idea (durations end in `_s`):
# an old spelling is refused with a line naming the new key, never read as an alias.
RENAMED_KEYS: dict[str, dict[str, str]] = {
    "mqtt": {"keepalive": "keepalive_s", "health_interval": "health_interval_s",
             "reconnect_min": "reconnect_min_s", "reconnect_max": "reconnect_max_s",
             "connect_timeout": "connect_timeout_s"},
    "supervisor": {"watch_interval": "watch_interval_s", "restart_backoff_min": "restart_backoff_min_s",
                   "restart_backoff_max": "restart_backoff_max_s"},
}


def refuse_renamed(section: Section, renamed: Mapping[str, str]) -> None:
    """Refuse every old spelling in `renamed` (old -> new) present in `section`."""
    for old, new in renamed.items():
        section.renamed(old, new)


@dataclass(frozen=True)
class SupervisorConfig:
    watch_interval: float = 1.0         # [supervisor] watch_interval_s
    restart_backoff_min: float = 1.0    # restart_backoff_min_s
    restart_backoff_max: float = 60.0   # restart_backoff_max_s


@dataclass(frozen=True)
class DriverSpec:
    """A configured driver type: its class and its parsed config."""

    cls: type[Driver]
    config: Any


@dataclass(frozen=True)
class GatewayConfig:
    site: str
    gateway: str
    state_dir: Path
    timezone: str = "Asia/Shanghai"
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    store: StoreLimits = field(default_factory=StoreLimits)
    evidence_spool_bytes: int = 1 << 30
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)
    drivers: dict[str, DriverSpec] = field(default_factory=dict)   # driver type name -> spec
    source: str = ""

    @property
    def topic_prefix(self) -> str:
        return f"anfang/v1/{self.site}/{self.gateway}"


def parse_url(url: str, section: Section) -> tuple[str, int, bool]:
    u = urlparse(url)
    if u.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not u.hostname:
        section.error("url", f"expected mqtt://HOST:PORT or mqtts://HOST:PORT, got {url!r}")
        return "127.0.0.1", 1883, False
    tls = u.scheme in ("mqtts", "ssl")
    return u.hostname, u.port or (8883 if tls else 1883), tls


def _parse_mqtt(sec: Section, gateway_id: str) -> MqttConfig:
    host, port, tls_from_url = "127.0.0.1", 1883, False
    if sec.has("url"):
        host, port, tls_from_url = parse_url(sec.str("url"), sec)
    host = sec.str("host", host)
    port = sec.int("port", port, min=1, max=65535)
    tls_sec = sec.section("tls")
    tls = None
    if tls_from_url or tls_sec.raw:
        tls = TlsConfig(
            ca_file=tls_sec.path("ca_file", must_exist=True) if tls_sec.has("ca_file") else None,
            cert_file=tls_sec.path("cert_file", must_exist=True) if tls_sec.has("cert_file") else None,
            key_file=tls_sec.path("key_file", must_exist=True) if tls_sec.has("key_file") else None,
            key_passphrase=tls_sec.secret("key_passphrase"),
            verify_hostname=tls_sec.bool("verify_hostname", True),
        )
        if (tls.cert_file is None) != (tls.key_file is None):
            tls_sec.error("key_file" if tls.key_file is None else "cert_file",
                          "client certificates need both cert_file and key_file")
        tls_sec.finish()
    username = sec.str("username", "") or None
    password = sec.secret("password")
    if password is not None and username is None:
        sec.error("username", "is required when a password is given")
    cfg = MqttConfig(
        host=host, port=port,
        protocol=sec.str("protocol", "5", choices=("5", "3.1.1")),
        client_id=sec.str("client_id", f"anfang-{gateway_id}", pattern=r"[A-Za-z0-9_.-]{1,64}"),
        keepalive=sec.int("keepalive_s", 15, min=5, max=3600),
        username=username, password=password, tls=tls,
        inflight=sec.int("inflight", 200, min=1, max=65535),
        telemetry_qos=sec.int("telemetry_qos", 0, min=0, max=1),
        health_interval=sec.float("health_interval_s", 30.0, min=1.0, max=3600.0),
        reconnect_min=sec.float("reconnect_min_s", 0.5, min=0.05, max=60.0),
        reconnect_max=sec.float("reconnect_max_s", 30.0, min=0.1, max=3600.0),
        connect_timeout=sec.float("connect_timeout_s", 5.0, min=0.5, max=120.0),
        process=sec.bool("process", True),
    )
    refuse_renamed(sec, RENAMED_KEYS["mqtt"])
    sec.finish()
    return cfg


def parse_config(raw: Mapping[str, Any], *, base_dir: Path | None = None, source: str = "",
                 driver_types: Mapping[str, type[Driver]] | None = None) -> GatewayConfig:
    """Validate a parsed TOML document; raises ConfigError listing every problem."""
    problems = Problems()
    root = Section(raw, "", problems, base_dir)
    gw = root.section("gateway", required=True)
    site = gw.str("site", pattern=NAME_PATTERN)
    gateway_id = gw.str("id", pattern=NAME_PATTERN)
    state_dir = gw.path("state_dir", "/var/lib/anfang")
    tz = gw.str("timezone", "Asia/Shanghai")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        gw.error("timezone", f"unknown time zone {tz!r} (use an IANA name such as Asia/Shanghai)")
    gw.finish()

    mqtt = _parse_mqtt(root.section("mqtt"), gateway_id or socket.gethostname())

    st = root.section("store")
    max_db_mb = st.float("max_db_mb", 0, min=0)
    limits = StoreLimits(max_events=st.int("max_events", 1_000_000, min=100),
                         max_bytes=int(st.float("max_mb", 512, min=1) * 1024 * 1024),
                         max_db_bytes=int(max_db_mb * 1024 * 1024) or None)
    spool = int(st.float("evidence_spool_mb", 1024, min=1) * 1024 * 1024)
    st.finish()

    sv = root.section("supervisor")
    supervisor = SupervisorConfig(
        watch_interval=sv.float("watch_interval_s", 1.0, min=0.05, max=60),
        restart_backoff_min=sv.float("restart_backoff_min_s", 1.0, min=0.01, max=600),
        restart_backoff_max=sv.float("restart_backoff_max_s", 60.0, min=0.01, max=3600))
    refuse_renamed(sv, RENAMED_KEYS["supervisor"])
    sv.finish()

    if driver_types is not None:
        types, broken = dict(driver_types), {}
    else:
        types, broken = discover_driver_types(set(raw) - set(GATEWAY_TABLES))
    owner: dict[str, str] = {}
    for name, cls in types.items():
        for key in (name, *cls.config_keys):
            owner[key] = name
    drivers: dict[str, Any] = {}
    wanted: dict[str, dict[str, Any]] = {}
    for key, value in raw.items():
        if key in GATEWAY_TABLES:
            continue
        if key not in owner and key in broken:
            problems.add(key, f"driver plug-in {key} ({broken[key].target}) cannot be loaded: {broken[key].error}")
            continue
        if key not in owner:
            known = ", ".join(sorted(set(owner) | set(GATEWAY_TABLES)))
            problems.add(key, f"unknown section (no installed driver owns it; known: {known})")
            continue
        wanted.setdefault(owner[key], {})[key] = value
    for name, parts in wanted.items():
        try:
            drivers[name] = DriverSpec(types[name], types[name].parse_config(parts, problems, base_dir))
        except Exception as exc:  # a driver's validator must not take check-config down
            problems.add(name, f"driver {name} failed to read its config: {type(exc).__name__}: {exc}")
    problems.raise_if_any(source)
    return GatewayConfig(site=site, gateway=gateway_id, state_dir=state_dir, timezone=tz, mqtt=mqtt,
                         store=limits, evidence_spool_bytes=spool, supervisor=supervisor,
                         drivers=drivers, source=source)


def load_config(path: Path | str, driver_types: Mapping[str, type[Driver]] | None = None) -> GatewayConfig:
    """Load and validate a config file; raises ConfigError listing every problem."""
    p = Path(path)
    raw, problems = load_toml(p)
    problems.raise_if_any(str(p))
    return parse_config(raw, base_dir=p.resolve().parent, source=str(p), driver_types=driver_types)


__all__ = ["ConfigError", "DriverSpec", "GatewayConfig", "MqttConfig", "RENAMED_KEYS", "TlsConfig",
           "SupervisorConfig", "load_config", "parse_config"]

"""A throwaway local mosquitto broker on a free loopback port.

Used by `anfang sim` (when no `--broker` is given), by the tests and by the
benchmarks. mosquitto 2.x listens only on loopback without a `listener` line
and needs `allow_anonymous true` for an open test listener; started as root it
drops to the `mosquitto` user unless told `user root`. TLS listeners (a CA, a
server certificate, optionally requiring client certificates) are supported
for the TLS tests.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


class BrokerUnavailable(RuntimeError):
    """mosquitto is not installed or would not start."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_mosquitto() -> str:
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise BrokerUnavailable("mosquitto is not installed (Debian: apt-get install mosquitto)")


@dataclass
class BrokerTls:
    ca_file: Path
    cert_file: Path
    key_file: Path
    require_client_cert: bool = False


class LocalBroker:
    """A mosquitto process on 127.0.0.1; `stop()` and `start()` again keep the same port."""

    def __init__(self, port: int | None = None, *, tls: BrokerTls | None = None,
                 extra_config: str = "", workdir: Path | None = None, persistent: bool = False) -> None:
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.tls = tls
        self.persistent = persistent
        self.extra_config = extra_config
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="anfang-broker-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "mosquitto.log"

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def _write_config(self) -> Path:
        persistence = (["persistence true", f"persistence_location {self.workdir}/", "autosave_interval 1"]
                       if self.persistent else ["persistence false"])
        lines = [f"listener {self.port} {self.host}", "allow_anonymous true", *persistence,
                 "log_dest stderr", "log_type error", "log_type warning",
                 "max_inflight_messages 0", "max_queued_messages 0", "message_size_limit 0"]
        if os.geteuid() == 0:
            lines.append("user root")
        if self.tls:
            lines += [f"cafile {self.tls.ca_file}", f"certfile {self.tls.cert_file}",
                      f"keyfile {self.tls.key_file}"]
            if self.tls.require_client_cert:
                lines += ["require_certificate true", "use_identity_as_username true"]
        if self.extra_config:
            lines.append(self.extra_config)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self, timeout: float = 10.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        conf = self._write_config()
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([find_mosquitto(), "-c", str(conf)], stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerUnavailable(f"mosquitto exited with {self.proc.returncode}: "
                                        f"{self.log_path.read_text(errors='replace')[-500:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise BrokerUnavailable(f"mosquitto did not listen on {self.host}:{self.port} within {timeout} s")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "LocalBroker":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

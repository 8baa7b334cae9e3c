"""sd_notify messages, captured on a real AF_UNIX datagram socket standing in
for systemd's notify socket (a filesystem path and an abstract '@' name)."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from gateway.sdnotify import STATUS_MAX_CHARS, SdNotifier


class Receiver:
    """A datagram socket bound where NOTIFY_SOCKET will point."""

    def __init__(self, notify_socket: str) -> None:
        self.notify_socket = notify_socket
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        bind_to = "\0" + notify_socket[1:] if notify_socket.startswith("@") else notify_socket
        self.sock.bind(bind_to)
        self.sock.settimeout(5.0)  # a deadline, not a delay: recv returns as soon as a datagram is in

    def recv(self) -> str:
        return self.sock.recv(8192).decode("utf-8")

    def pending(self) -> bool:
        self.sock.setblocking(False)
        try:
            self.sock.recv(8192, socket.MSG_PEEK)
            return True
        except BlockingIOError:
            return False
        finally:
            self.sock.settimeout(5.0)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # unix socket paths are limited to 107 bytes: keep it short whatever tmp_path is
    with tempfile.TemporaryDirectory(prefix="sdn") as d:
        yield Path(d)


@pytest.fixture(params=["path", "abstract"])
def receiver(request: pytest.FixtureRequest, short_dir: Path) -> Iterator[Receiver]:
    if request.param == "path":
        address = str(short_dir / "notify")
    else:
        address = f"@anfang-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    r = Receiver(address)
    yield r
    r.close()


def test_ready_reaches_the_notify_socket(receiver: Receiver) -> None:
    n = SdNotifier.from_env({"NOTIFY_SOCKET": receiver.notify_socket})
    assert n.enabled
    assert n.ready() is True
    assert receiver.recv() == "READY=1"


def test_each_message_kind(receiver: Receiver) -> None:
    with SdNotifier.from_env({"NOTIFY_SOCKET": receiver.notify_socket}) as n:
        n.status("3 drivers running, 0 events buffered")
        n.watchdog()
        n.stopping()
        n.ready(status="up")
        n.extend_timeout(90)
    assert receiver.recv() == "STATUS=3 drivers running, 0 events buffered"
    assert receiver.recv() == "WATCHDOG=1"
    assert receiver.recv() == "STOPPING=1"
    assert receiver.recv() == "READY=1\nSTATUS=up"
    assert receiver.recv() == "EXTEND_TIMEOUT_USEC=90000000"


def test_notify_sends_fields_in_one_datagram_in_order(receiver: Receiver) -> None:
    n = SdNotifier.from_env({"NOTIFY_SOCKET": receiver.notify_socket})
    assert n.notify(STATUS="draining", READY=1, MAINPID=os.getpid())
    assert receiver.recv() == f"STATUS=draining\nREADY=1\nMAINPID={os.getpid()}"


def test_status_is_one_line(receiver: Receiver) -> None:
    n = SdNotifier.from_env({"NOTIFY_SOCKET": receiver.notify_socket})
    n.status("broker down\nREADY=1\r\n  12 events\tbuffered\x00\x1b[31m")
    msg = receiver.recv()
    # a newline in the text must never smuggle in a second assignment
    assert msg.count("\n") == 0
    assert msg == "STATUS=broker down READY=1 12 events buffered[31m"


def test_long_status_is_truncated_sanely(receiver: Receiver) -> None:
    n = SdNotifier.from_env({"NOTIFY_SOCKET": receiver.notify_socket})
    n.status("\u5317\u5899 " * 500)  # multi-byte text: cut on characters, stays valid UTF-8
    msg = receiver.recv()
    value = msg.removeprefix("STATUS=")
    assert len(value) == STATUS_MAX_CHARS
    assert value.endswith("\u2026")
    assert value.startswith("\u5317\u5899 \u5317\u5899")


def test_bad_key_is_a_programming_error(receiver: Receiver) -> None:
    n = SdNotifier.from_env({"NOTIFY_SOCKET": receiver.notify_socket})
    with pytest.raises(ValueError):
        n.notify(**{"ready\nX": 1})
    assert not receiver.pending()


def test_without_notify_socket_every_call_is_a_no_op() -> None:
    n = SdNotifier.from_env({})
    assert not n.enabled
    assert n.ready() is False
    assert n.status("x") is False
    assert n.watchdog() is False
    assert n.stopping() is False
    assert n.watchdog_interval() is None
    n.close()


def test_unsupported_address_is_reported_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="gateway.sdnotify"):
        n = SdNotifier.from_env({"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not n.enabled
    assert n.ready() is False
    assert "vsock:2:1234" in caplog.text


def test_send_failure_never_raises_and_is_logged_once(
    short_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    address = str(short_dir / "gone")  # nobody listens here (yet)
    n = SdNotifier.from_env({"NOTIFY_SOCKET": address})
    with caplog.at_level(logging.WARNING, logger="gateway.sdnotify"):
        assert n.ready() is False
        assert n.watchdog() is False
        assert n.status("still failing") is False
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "systemd notification failed" in warnings[0].getMessage()

    # the manager comes back (daemon-reexec): messages flow again, no restart needed
    r = Receiver(address)
    try:
        assert n.watchdog() is True
        assert r.recv() == "WATCHDOG=1"
    finally:
        r.close()


def test_send_to_a_full_queue_gives_up_instead_of_blocking(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    n = SdNotifier.from_env({"NOTIFY_SOCKET": receiver.notify_socket})
    # nobody reads: the receiver's queue fills, sends fail with EAGAIN at
    # once, and the caller gets False, not a hang
    with caplog.at_level(logging.WARNING, logger="gateway.sdnotify"):
        results = [n.status("x" * 150) for _ in range(2000)]
    assert results[0] is True
    assert False in results
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "500000"}, 0.25),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "me"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None, short_dir: Path) -> None:
    n = SdNotifier.from_env({"NOTIFY_SOCKET": str(short_dir / "notify"), **env})
    assert n.watchdog_interval() == expected

"""A broker ACL keeps the gateway's user to its own prefix; commands only on its own cmd/ topics.

Real mosquitto with a password file (mosquitto_passwd) and an acl_file:
anonymous clients (the monitoring centre in these tests) may read everything
and write only gw1's commands; user `gw1` may use only `anfang/v1/s1/gw1/#`;
user `gw2` only gw2's prefix.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sim.broker import LocalBroker
from tests.gateway.gw_helpers import RunningGateway, gateway_config
from tests.helpers import Subscriber, request, wait_until

PASSWORDS = {"gw1": "gw1-Pa55-word", "gw2": "gw2-Pa55-word"}
ACL = """
# anonymous: the monitoring centre in these tests
topic read anfang/#
topic write anfang/v1/s1/gw1/cmd/#

user gw1
topic readwrite anfang/v1/s1/gw1/#

user gw2
topic readwrite anfang/v1/s1/gw2/#
"""


@pytest.fixture
def acl_broker(tmp_path_factory: pytest.TempPathFactory):
    passwd_tool = shutil.which("mosquitto_passwd")
    if passwd_tool is None:
        pytest.skip("mosquitto_passwd is not installed")
    work = tmp_path_factory.mktemp("aclbroker")
    pw = work / "passwd"
    for user, password in PASSWORDS.items():
        subprocess.run([passwd_tool, *(["-c"] if not pw.exists() else []), "-b", str(pw), user, password],
                       check=True, capture_output=True)
    pw.chmod(0o600)
    acl = work / "acl"
    acl.write_text(ACL)
    acl.chmod(0o600)
    b = LocalBroker(workdir=work, extra_config=f"password_file {pw}\nacl_file {acl}")
    b.start()
    yield b
    b.close()


def _password_file(tmp_path: Path, user: str) -> Path:
    p = tmp_path / f"{user}.password"
    p.write_text(PASSWORDS[user] + "\n")
    p.chmod(0o600)
    return p


def _request(broker: LocalBroker, topic: str, payload: bytes, *, user: str | None = None,
             timeout: float = 3.0) -> dict[str, Any] | None:
    """An MQTT 5 request; the reply, or None if none came within `timeout`."""
    reply_topic = "anfang/v1/s1/gw1/reply/test-centre" if user is None else f"anfang/v1/s1/{user}/reply/x"
    reply = request(broker.host, broker.port, topic, payload, reply_topic=reply_topic, timeout=timeout,
                    auth=(user, PASSWORDS[user]) if user else None)
    return reply.json() if reply else None


def test_gateway_works_within_its_acl(tmp_path: Path, acl_broker: LocalBroker) -> None:
    sub = Subscriber(acl_broker.host, acl_broker.port, ["anfang/v1/s1/gw1/#"])
    cfg = gateway_config(tmp_path / "gw", acl_broker, probes=[{"name": "p", "interval": 0.05}],
                         mqtt={"username": "gw1", "password_file": str(_password_file(tmp_path, "gw1"))})
    with RunningGateway(cfg) as gw:
        events = sub.wait_events(lambda evs: len(evs) >= 20)
        wait_until(lambda: sub.received("/health"), 10, message="health")
        assert gw.supervisor.forwarder.stats.rejected == 0
        assert json.loads(sub.received("/status")[-1].payload)["state"] == "online"
        reply = _request(acl_broker, "anfang/v1/s1/gw1/cmd/ping", b"")
        assert reply is not None and reply["ok"] is True
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1))
    sub.close()


def test_publishing_outside_its_prefix_is_refused_by_the_broker_and_reported(
        tmp_path: Path, acl_broker: LocalBroker, caplog: pytest.LogCaptureFixture) -> None:
    # gw1's credentials on a gateway configured as gw2: everything it sends is outside gw1's ACL
    sub = Subscriber(acl_broker.host, acl_broker.port, ["anfang/v1/s1/#"])
    cfg = gateway_config(tmp_path / "gw", acl_broker, probes=[{"name": "p", "interval": 0.1}],
                         mqtt={"username": "gw1", "password_file": str(_password_file(tmp_path, "gw1"))},
                         extra={"gateway": {"site": "s1", "id": "gw2", "state_dir": str(tmp_path / "gw")}})
    assert cfg.topic_prefix == "anfang/v1/s1/gw2"
    with RunningGateway(cfg) as gw:
        # mosquitto answers a PUBACK "Not authorized" and then closes the connection
        wait_until(lambda: gw.supervisor.forwarder.stats.rejected >= 3, 15, message="refused PUBACKs")
        health = gw.supervisor.health()
        assert health["forwarder"]["rejected"] >= 3
        assert health["forwarder"]["last_error"]
        assert health["buffer"]["events"] > 0, "events the broker would not take stay in the buffer"
    refusals = [r.getMessage() for r in caplog.records if "broker refused" in r.getMessage()]
    assert refusals and "Not authorized" in refusals[0] and "check its ACL" in refusals[0]
    assert not sub.received("anfang/v1/s1/gw2/"), "the broker let nothing through"
    sub.close()


def test_commands_only_on_the_gateways_own_cmd_topics(tmp_path: Path, acl_broker: LocalBroker) -> None:
    cfg = gateway_config(tmp_path / "gw", acl_broker, probes=[{"name": "p", "interval": 0.5}],
                         mqtt={"username": "gw1", "password_file": str(_password_file(tmp_path, "gw1"))})
    with RunningGateway(cfg) as gw:
        wait_until(lambda: gw.supervisor.forwarder.stats.connected and "probe_count" in gw.supervisor.commands.names(),
                   10, message="commands ready")
        router = gw.supervisor.commands
        ok = _request(acl_broker, "anfang/v1/s1/gw1/cmd/probe_count", b'{"device": "p"}')
        assert ok is not None and ok["ok"] is True
        handled = router.handled + router.refused
        # another gateway's cmd topic, by a client allowed there (gw2): not gw1's business
        assert _request(acl_broker, "anfang/v1/s1/gw2/cmd/ping", b"", user="gw2", timeout=1.5) is None
        # gw1's cmd topic from a user the ACL does not allow to write there: the broker drops it
        assert _request(acl_broker, "anfang/v1/s1/gw1/cmd/ping", b"", user="gw2", timeout=1.5) is None
        # deeper topics under cmd/ are not commands (the gateway subscribes to cmd/+ only)
        assert _request(acl_broker, "anfang/v1/s1/gw1/cmd/ping/extra", b"", timeout=1.5) is None
        assert router.handled + router.refused == handled, "nothing from outside reached the router"
        # an allowed name with arguments it does not take, and a name not on the list: refused with a reason
        bad = _request(acl_broker, "anfang/v1/s1/gw1/cmd/probe_count", b'{"device": "p", "path": "/etc/shadow"}')
        assert bad is not None and bad["ok"] is False and "unknown argument" in bad["error"]
        unknown = _request(acl_broker, "anfang/v1/s1/gw1/cmd/shell", b'{"cmd": "reboot"}')
        assert unknown is not None and unknown["ok"] is False and "allowed:" in unknown["error"]
        assert gw.supervisor.health()["commands"]["refused"] >= 2

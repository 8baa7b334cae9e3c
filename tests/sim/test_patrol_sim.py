"""The simulated patrol site against the real driver, and end to end through `anfang sim`."""

from __future__ import annotations

import io
import threading
from pathlib import Path


from gateway.configfile import Problems

from drivers.patrol import PatrolDriver
from sim.base import SimWorld
from sim.patrol import PatrolSim, card_for
from sim.scenario import Action, DeviceSpec, Scenario, load_scenario
from tests.helpers import Subscriber, wait_until


def build(tmp_path: Path, make_ctx, **params):
    world = SimWorld(state_dir=tmp_path / "sim")
    sim = PatrolSim("site", {"leg_s": 0.5, "max_leg_s": 20, "corrupt": 0.2, **params}, world)
    fragment = sim.config()
    problems = Problems()
    cfg = PatrolDriver.parse_config(fragment, problems, world.state_dir)
    assert not problems, [str(p) for p in problems.items]
    ctx = make_ctx("patrol", event_class="patrol", resources=world.resources)
    return sim, PatrolDriver("patrol", cfg, ctx), world


def test_simulated_readers_of_every_kind_reach_the_driver(tmp_path, make_ctx):
    sim, drv, world = build(tmp_path, make_ctx, walk=False)
    sim.start()
    drv.start()
    try:
        wait_until(lambda: all(s == "ok" for s in drv.health().devices.values()), 10, message="readers open")
        sim.walk("Zhang Wei", "Li Na", skip=[], late=[])
        for reader, kind in sim.readers:
            for guard in ("Zhang Wei", "Li Na"):
                ev = drv.ctx.wait_event(lambda e, r=reader, g=guard: e.type == "checkin" and e.device == r
                                        and e.data["guard"] == g, timeout=10)
                assert ev.data["card"] == card_for(kind, guard)
        # corrupt frames went in, none came out as a check-in of its own
        checkins = drv.ctx.events("checkin")
        assert len(checkins) == 2 * len(sim.readers)
        assert {e.data["guard"] for e in checkins} == {"Zhang Wei", "Li Na"}
    finally:
        drv.stop()
        sim.stop()


def test_unplug_and_replug_a_simulated_reader(tmp_path, make_ctx):
    sim, drv, world = build(tmp_path, make_ctx, walk=False)
    sim.start()
    drv.start()
    try:
        wait_until(lambda: all(s == "ok" for s in drv.health().devices.values()), 10, message="readers open")
        sim.act("unplug", {"reader": 1})
        fault = drv.ctx.wait_event("reader_fault")
        assert fault.device == "site-cp1"
        sim.act("replug", {"reader": 1})
        drv.ctx.wait_event("reader_restore", timeout=10)
        wait_until(lambda: drv.health().devices["site-cp1"] == "ok", 5, message="reader back")
        sim.act("present", {"reader": 1, "guard": "Wang Fang"})
        ev = drv.ctx.wait_event("checkin")
        assert ev.device == "site-cp1" and ev.data["guard"] == "Wang Fang"
    finally:
        drv.stop()
        sim.stop()


def test_default_scenario_has_a_patrol_site():
    default = load_scenario("default")
    assert any(d.kind == "patrol" for d in default.devices)


def test_anfang_sim_patrol_end_to_end(broker, tmp_path):
    from sim import runner

    scenario = Scenario(name="patrol-e2e", duration=60,
                        devices=[DeviceSpec("patrol", "site", {"leg_s": 0.5, "max_leg_s": 20})],
                        actions=[Action(at=4.0, do="unplug", device="site", params={"reader": 3}),
                                 Action(at=6.0, do="replug", device="site", params={"reader": 3})])
    sub = Subscriber(broker.host, broker.port, "anfang/v1/sim/gw1/event/patrol/#")
    run = runner.SimRun(scenario, broker_url=broker.url, state_dir=tmp_path / "run", out=io.StringIO())
    t = threading.Thread(target=run.run, daemon=True)
    t.start()
    wanted = {"checkin", "round_started", "round_completed", "reader_fault", "reader_restore"}
    try:
        sub.wait_events(lambda evs: wanted <= {e["type"] for e in evs}, timeout=45)
    finally:
        run.request_stop()
        t.join(30)
        sub.close()
    events = sub.events()
    assert all(e["class"] == "patrol" for e in events)
    done = [e for e in events if e["type"] == "round_completed"]
    assert done[0]["data"]["route"] == "site-route"
    fault = next(e for e in events if e["type"] == "reader_fault")
    assert fault["device"] == "site-cp3" and fault["severity"] == "warning"

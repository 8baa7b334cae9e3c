"""The durable event store: dense seq under concurrency, persistence, eviction, corruption."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from gateway.clock import SystemClock
from gateway.events import EventDraft
from gateway.store import EventStore, StoreLimits

CLOCK = SystemClock()


def draft(i: int = 0, severity: str = "info", type_: str = "tick") -> EventDraft:
    return EventDraft(cls="ir_beam", device="north-wall-1", type=type_, severity=severity, ts=CLOCK.now(),
                      data={"i": i})


def open_store(path: Path, **limits: int) -> EventStore:
    return EventStore(path / "events.db", site="s1", gateway="gw1", limits=StoreLimits(**limits))


def test_concurrent_appends_get_dense_unique_seq_in_commit_order(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    results: dict[int, list[int]] = {}

    def emitter(k: int) -> None:
        results[k] = [store.append(draft(i)).seq for i in range(300)]

    threads = [threading.Thread(target=emitter, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    all_seqs = sorted(s for seqs in results.values() for s in seqs)
    assert all_seqs == list(range(1, 2401))
    for seqs in results.values():          # each emitter sees its own events in order
        assert seqs == sorted(seqs)
    assert store.commits < 2400             # group commit shared transactions
    stored = store.all_events()
    assert [e.seq for e in stored] == list(range(1, 2401))
    store.close()


def test_events_survive_reopen_and_seq_continues(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    first = [store.append(draft(i)) for i in range(5)]
    store.ack([1, 2])
    store.close()
    store = open_store(tmp_path)
    assert [e.seq for e in store.all_events()] == [3, 4, 5]
    assert store.all_events()[0].id == first[2].id
    assert store.append(draft(99)).seq == 6
    store.close()


def test_acked_events_leave_the_disk(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    for i in range(10):
        store.append(draft(i))
    store.ack(range(1, 8))
    store.append(draft(10))          # a commit flushes pending acks
    assert [e.seq for e in store.all_events()] == [8, 9, 10, 11]
    assert store.depth().count == 4
    store.close()


def test_cap_evicts_lowest_severity_oldest_first_and_reports_the_gap(tmp_path: Path) -> None:
    store = open_store(tmp_path, max_events=100)
    critical = [store.append(draft(i, "critical", "alarm")).seq for i in range(30)]
    warnings = [store.append(draft(i, "warning")).seq for i in range(30)]
    infos = [store.append(draft(i, "info")).seq for i in range(100)]
    events = store.all_events()
    kept = {e.seq for e in events}
    assert len(events) <= 100
    reports = [e for e in events if e.type == "events_dropped"]
    assert reports, "a dropped event must be reported"
    dropped = {s for r in reports for lo, hi in r.data["ranges"] for s in range(lo, hi + 1)}
    # every seq ever given is either still stored or named in a report: no silent gap
    assert kept | dropped == set(range(1, store.last_seq + 1))
    assert set(critical) <= kept and set(warnings) <= kept, "higher severities must stay while info remains"
    dropped_infos = sorted(set(infos) & dropped)
    kept_infos = sorted(set(infos) & kept)
    assert dropped_infos and max(dropped_infos) < min(kept_infos), "the oldest go first"
    assert reports[-1].severity == "warning" and reports[-1].data["reason"] == "buffer_full"
    store.close()


def test_byte_cap_is_enforced(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "e.db", site="s1", gateway="gw1",
                       limits=StoreLimits(max_events=10**6, max_bytes=20_000))
    for i in range(300):
        store.append(draft(i))
    assert store.depth().bytes <= 20_000
    assert any(e.type == "events_dropped" for e in store.all_events())
    store.close()


def test_corrupt_database_is_moved_aside_reported_and_seq_never_reused(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    for i in range(20):
        store.append(draft(i))
    store.close()
    db = tmp_path / "events.db"
    db.write_bytes(b"this is not a database" * 100)
    store = open_store(tmp_path)
    events = store.all_events()
    assert [e.type for e in events] == ["store_recovered"]
    assert events[0].seq > 20
    assert events[0].data["unsent_events_lost_up_to_seq"] >= 20
    assert list(tmp_path.glob("events.db.corrupt-*"))
    assert store.append(draft()).seq == events[0].seq + 1
    store.close()


def test_disk_full_evicts_low_severity_to_make_room(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    for i in range(400):
        store.append(draft(i, "info"))
    store.close()
    # a full disk in miniature: the database file may not grow beyond its current size
    size = (tmp_path / "events.db").stat().st_size
    store = EventStore(tmp_path / "events.db", site="s1", gateway="gw1",
                       limits=StoreLimits(max_db_bytes=size))
    alarm = None
    for i in range(400):
        alarm = store.append(draft(i, "alarm", "alarm"))
    assert alarm is not None
    kinds = [e.type for e in store.all_events()]
    assert "events_dropped" in kinds
    assert kinds.count("alarm") >= 200, "most alarms must fit once the info events made room"
    if kinds.count("alarm") < 400:
        assert "tick" not in kinds, "an alarm was dropped while an info event remained"
    reasons = {e.data["reason"] for e in store.all_events() if e.type == "events_dropped"}
    assert "disk_full" in reasons
    store.close()


def test_events_json_validates_against_shipped_schema(tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from gateway.events import event_schema
    store = open_store(tmp_path)
    ev = store.append(draft(1, "alarm", "alarm"))
    import json
    jsonschema.validate(json.loads(ev.to_json()), event_schema())
    store.close()


def test_seq_continues_after_every_event_was_acknowledged(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    for i in range(7):
        store.append(draft(i))
    store.ack(range(1, 8))
    store.close()                       # closing flushes the acks: the table is empty
    store = open_store(tmp_path)
    assert store.all_events() == []
    assert store.append(draft()).seq == 8
    store.close()


class HeldStore(EventStore):
    """A store whose writer can be held inside a commit, as a slow disk would hold it."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.hold = threading.Event()       # set: the next commits wait until `release` is set
        self.held = threading.Event()       # a commit is being held
        self.release = threading.Event()
        super().__init__(*args, **kwargs)   # type: ignore[arg-type]

    def _commit(self, batch, acks):         # type: ignore[no-untyped-def]
        if self.hold.is_set():
            self.held.set()
            self.release.wait(60)
        return super()._commit(batch, acks)


def test_an_interrupted_caller_does_not_strand_the_callers_woken_after_it(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Callers of one commit are woken in a chain; Ctrl-C in one of them must not break it."""
    import signal

    from tests.helpers import wait_until

    # Ctrl-C must raise KeyboardInterrupt here, whatever handler an earlier in-process test left
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))
    store = HeldStore(tmp_path / "e.db", site="s1", gateway="gw1")
    main = threading.main_thread().ident
    assert threading.get_ident() == main, "the interrupt goes to the main thread"
    store.hold.set()                              # hold the writer inside its first commit
    first = threading.Thread(target=store.append, args=(draft(0),))
    first.start()
    assert store.held.wait(5), "the writer took the first event"
    done: list[int] = []

    def later(i: int) -> None:
        done.append(store.append(draft(i)).seq)

    def conductor() -> None:
        wait_until(lambda: store.pending == 1, 20, message="the main thread's event queued")
        others = [threading.Thread(target=later, args=(i,)) for i in (2, 3)]
        for t in others:
            t.start()
        wait_until(lambda: store.pending == 3, 20, message="two more callers queued behind it")
        signal.pthread_kill(main, signal.SIGINT)  # the main thread is parked in its wait

    helper = threading.Thread(target=conductor)
    helper.start()
    with pytest.raises(KeyboardInterrupt):
        try:
            store.append(draft(1))
        finally:
            store.hold.clear()
            store.release.set()                   # the commits go ahead only once it was interrupted
    helper.join(10)
    first.join(10)
    wait_until(lambda: len(done) == 2, 5, message="the callers after the interrupted one to return")
    assert sorted(done) == [3, 4]
    assert [e.seq for e in store.all_events()] == [1, 2, 3, 4], "the interrupted caller's event is kept"
    store.close()


def test_an_event_that_cannot_be_serialised_fails_alone_and_the_store_goes_on(tmp_path: Path) -> None:
    store = open_store(tmp_path / "e.db")
    bad = EventDraft(cls="ir_beam", device="d", type="tick", severity="info", ts=CLOCK.now(),
                     data={"reading": object()})
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        store.append_many([draft(1), bad])          # one caller's events: all or none
    results: list[int] = []
    threads = [threading.Thread(target=lambda i=i: results.append(store.append(draft(i)).seq)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == list(range(1, 9)), "no seq is used by the refused events"
    assert sorted(e.data["i"] for e in store.all_events()) == list(range(8)), "only the good events are stored"
    store.close()


def test_when_the_seq_reservation_cannot_be_written_events_still_go_in_and_the_error_shows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import gateway.store.seqreserve as seqreserve
    monkeypatch.setattr(seqreserve, "RESERVE_BLOCK", 5)
    store = open_store(tmp_path / "e.db")
    reserve = tmp_path / "e.db" / "events.db.seq-reserve"
    blocker = reserve.with_name(f".{reserve.name}.tmp{os.getpid()}")
    blocker.mkdir()                                  # the side file's temporary name is taken: writing fails
    events = [store.append(draft(i)) for i in range(12)]
    assert [e.seq for e in events] == list(range(1, 13)), "events are committed all the same"
    assert "seq reservation" in store.last_error
    blocker.rmdir()
    store.append(draft(99))
    assert store.last_error == "", "the next reservation succeeds and the error clears"
    assert int(reserve.read_text()) >= 13
    store.close()


def test_large_commits_and_acks_span_several_statements_and_keep_the_books(tmp_path: Path) -> None:
    store = open_store(tmp_path / "e.db")
    events = store.append_many([draft(i) for i in range(1000)])       # several INSERT statements
    assert [e.seq for e in events] == list(range(1, 1001))
    assert store.count == 1000 and store.bytes == sum(len(e.to_json()) for e in events)
    store.ack(range(1, 1001))                                          # several DELETE statements
    store.append(draft(1000))                                          # acks are flushed with a commit
    assert store.count == 1 and store.bytes == len(store.all_events()[0].to_json())
    store.close()
    reopened = open_store(tmp_path / "e.db")
    assert reopened.count == 1 and reopened.last_seq == 1001
    reopened.close()


def test_submitted_events_are_committed_in_order_without_a_gap(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    waited: list[int] = []

    def submitter(k: int) -> None:
        for i in range(500):
            store.submit(draft(k * 1000 + i))

    def emitter() -> None:
        waited.extend(store.append(draft(-i)).seq for i in range(1, 51))

    threads = [threading.Thread(target=submitter, args=(k,)) for k in range(4)] + [threading.Thread(target=emitter)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    store.close()                     # commits what was handed over
    store = open_store(tmp_path)
    events = store.all_events()
    assert [e.seq for e in events] == list(range(1, 2051)), "dense seq, in commit order"
    for k in range(4):                # each submitter's events in the order it handed them over
        mine = [e.data["i"] for e in events if 0 <= e.data["i"] - k * 1000 < 1000]
        assert mine == [k * 1000 + i for i in range(500)]
    assert waited == sorted(waited)
    store.close()


def test_a_submitted_event_is_readable_only_once_committed(tmp_path: Path) -> None:
    store = HeldStore(tmp_path / "e.db", site="s1", gateway="gw1")
    store.hold.set()
    store.submit(draft(1))            # returns at once, although the disk holds the commit
    assert store.held.wait(5)
    store.submit(draft(2))
    assert store.pending == 1, "the second waits for the next commit"
    assert store.read_after(0, 10) == [], "nothing can be read, so nothing published, before the commit"
    store.hold.clear()
    store.release.set()
    from tests.helpers import wait_until
    wait_until(lambda: len(store.read_after(0, 10)) == 2, 5, message="both committed")
    assert [e.seq for e in store.read_after(0, 10)] == [1, 2]
    store.close()


def test_a_submitter_faster_than_the_disk_is_held_back_not_buffered_without_bound(tmp_path: Path) -> None:
    from gateway.store.groupcommit import MAX_BATCH, SUBMIT_LIMIT
    from tests.helpers import wait_until

    store = HeldStore(tmp_path / "e.db", site="s1", gateway="gw1")
    store.hold.set()
    total = MAX_BATCH + SUBMIT_LIMIT + 500     # more than the held commit and the queue can take
    handed = [0]

    def flood() -> None:
        for i in range(total):
            store.submit(draft(i))
            handed[0] += 1

    t = threading.Thread(target=flood, daemon=True)
    t.start()
    wait_until(lambda: store.held.is_set() and store.pending >= SUBMIT_LIMIT, 10,
               message="the queue to fill while the disk is held")
    assert not store.release.wait(0.2)            # the submitter's last call returns, or blocks
    seen = handed[0]
    assert not store.release.wait(0.3)            # give the submitter time to run on, if it could
    assert t.is_alive() and handed[0] == seen < total, "the submitter waits for room"
    assert store.pending <= SUBMIT_LIMIT
    store.hold.clear()
    store.release.set()
    t.join(10)
    assert not t.is_alive()
    store.close()
    store = EventStore(tmp_path / "e.db", site="s1", gateway="gw1")
    assert [e.data["i"] for e in store.all_events()] == list(range(total))
    store.close()


def test_data_that_cannot_be_serialised_is_refused_by_submit_itself(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    bad = EventDraft(cls="ir_beam", device="d", type="tick", severity="info", ts=CLOCK.now(),
                     data={"reading": object()})
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        store.submit_many([draft(1), bad])
    assert store.pending == 0
    assert store.append(draft(2)).seq == 1, "nothing was queued, no seq used"
    store.close()


def _dropped_report_matches_the_gap(store: EventStore, reason: str) -> None:
    events = store.all_events()
    reports = [e for e in events if e.type == "events_dropped"]
    assert reports and {r.data["reason"] for r in reports} == {reason}
    named = {s for r in reports for lo, hi in r.data["ranges"] for s in range(lo, hi + 1)}
    kept = {e.seq for e in events}
    gone = set(range(1, store.last_seq + 1)) - kept
    assert gone == named, "the report names exactly the seqs that are gone"
    if len(reports) == 1:
        assert reports[0].data["count"] == len(gone)
    assert all(r.severity == "warning" and r.data["by_severity"] for r in reports)


def test_one_report_names_the_dropped_range_for_the_cap(tmp_path: Path) -> None:
    store = open_store(tmp_path, max_events=200)
    store.append_many([draft(i, "info") for i in range(150)])
    store.append_many([draft(i, "alarm", "alarm") for i in range(100)])    # over the cap: one eviction
    reports = [e for e in store.all_events() if e.type == "events_dropped"]
    assert len(reports) == 1
    assert reports[0].data["ranges"][0][0] == 1, "the oldest info events go first"
    _dropped_report_matches_the_gap(store, "buffer_full")
    store.close()


def test_one_report_names_the_dropped_range_for_a_full_disk(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.append_many([draft(i, "info") for i in range(2000)])
    store.close()
    size = (tmp_path / "events.db").stat().st_size
    store = EventStore(tmp_path / "events.db", site="s1", gateway="gw1", limits=StoreLimits(max_db_bytes=size))
    for i in range(50):
        store.append_many([draft(i, "alarm", "alarm") for _ in range(20)])
    _dropped_report_matches_the_gap(store, "disk_full")
    store.close()


def test_the_slow_fsync_shim_really_delays_fsync(tmp_path: Path) -> None:
    """The benchmark's stand-in for an SD card: every fsync and fdatasync made late on purpose."""
    import os
    import shutil
    import subprocess
    import sys

    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the shim")
    from tests.benchmarks.bench_forwarder import build_slow_fsync_shim, slow_fsync_env

    lib = build_slow_fsync_shim(tmp_path)
    code = ("import os, sqlite3, time\n"
            f"fd = os.open({str(tmp_path / 'f')!r}, os.O_WRONLY | os.O_CREAT)\n"
            "t = time.perf_counter(); os.fsync(fd); os.fdatasync(fd); a = time.perf_counter() - t\n"
            f"db = sqlite3.connect({str(tmp_path / 'x.db')!r}, isolation_level=None)\n"
            "db.execute('PRAGMA journal_mode=WAL'); db.execute('PRAGMA synchronous=FULL')\n"
            "db.execute('CREATE TABLE t (x)')\n"
            "t = time.perf_counter(); db.execute('INSERT INTO t VALUES (1)'); b = time.perf_counter() - t\n"
            "print(a, b)\n")
    slow = subprocess.run([sys.executable, "-c", code], env=slow_fsync_env(lib, 60), capture_output=True,
                          text=True, check=True)
    two_syncs, commit = map(float, slow.stdout.split())
    assert two_syncs >= 0.12, "fsync and fdatasync each 60 ms late"
    assert commit >= 0.06, "a SQLite commit with synchronous=FULL pays it too"
    os.remove(tmp_path / "x.db")
    fast = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(fast.stdout.split()[0]) < two_syncs, "without the shim, fsync is not delayed"

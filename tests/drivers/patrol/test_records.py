"""The hash-chained record log: appends, one edited record, retention, a torn tail."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from drivers.patrol.records import GENESIS, RecordLog, record_hash, verify

T0 = datetime(2026, 8, 1, 8, 0, tzinfo=timezone.utc)


def fill(log: RecordLog, days: int, per_day: int = 3) -> None:
    for d in range(days):
        for i in range(per_day):
            log.append("checkin", "r-gate", T0 + timedelta(days=d, minutes=10 * i),
                       {"card": "0100D507D0", "guard": "Zhang Wei", "checkpoint": "gate", "i": i})


def test_chain_links_every_record(tmp_path):
    log = RecordLog(tmp_path / "r.jsonl")
    fill(log, 2)
    log.close()
    lines = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert lines[0]["prev"] == GENESIS
    for before, rec in zip(lines, lines[1:]):
        assert rec["prev"] == before["hash"] == record_hash(before)
    result = verify(tmp_path / "r.jsonl")
    assert result.ok and result.records == 6 and result.head == lines[-1]["hash"]


def test_one_edited_record_is_named(tmp_path):
    path = tmp_path / "r.jsonl"
    log = RecordLog(path)
    fill(log, 2)
    log.close()
    lines = path.read_text().splitlines()
    rec = json.loads(lines[3])
    rec["data"]["guard"] = "Li Na"                 # someone covers for a colleague
    lines[3] = json.dumps(rec, sort_keys=True, separators=(",", ":"))
    path.write_text("\n".join(lines) + "\n")
    result = verify(path)
    assert not result.ok and result.bad_line == 4 and result.bad_n == 4
    assert "edited" in result.reason
    assert result.describe().startswith("broken at line 4 (record n=4)")


def test_rehashing_an_edit_breaks_the_next_link(tmp_path):
    path = tmp_path / "r.jsonl"
    log = RecordLog(path)
    fill(log, 1)
    log.close()
    lines = path.read_text().splitlines()
    rec = json.loads(lines[0])
    rec["data"]["checkpoint"] = "back"
    rec["hash"] = record_hash(rec)                 # a careful forger recomputes the hash ...
    lines[0] = json.dumps(rec)
    path.write_text("\n".join(lines) + "\n")
    result = verify(path)                          # ... and the next record no longer fits
    assert not result.ok and result.bad_n == 2 and "prev" in result.reason


def test_deleted_record_is_found(tmp_path):
    path = tmp_path / "r.jsonl"
    log = RecordLog(path)
    fill(log, 1)
    log.close()
    lines = path.read_text().splitlines()
    del lines[1]
    path.write_text("\n".join(lines) + "\n")
    result = verify(path)
    assert not result.ok and result.bad_line == 2 and "expected 2" in result.reason


def test_retention_keeps_the_chain_verifiable(tmp_path):
    path = tmp_path / "r.jsonl"
    log = RecordLog(path, retention_days=90)
    fill(log, 100)                                  # 100 days, 3 a day
    head = log.head
    dropped = log.prune(T0 + timedelta(days=100))
    assert dropped == 3 * 10
    log.append("checkin", "r-gate", T0 + timedelta(days=100), {"after": "prune"})
    log.close()
    result = verify(path)
    assert result.ok and result.records == 3 * 90 + 1
    first = json.loads(path.read_text().splitlines()[0])
    assert first["anchor"] is True and first["n"] == 30
    assert head != GENESIS
    # pruning again keeps one anchor and stays verifiable
    log = RecordLog(path, retention_days=90)
    assert log.prune(T0 + timedelta(days=101)) == 3
    log.close()
    assert verify(path).ok
    assert sum(1 for x in path.read_text().splitlines() if '"anchor"' in x) == 1


def test_torn_tail_after_power_cut_is_cut_and_recorded(tmp_path):
    path = tmp_path / "r.jsonl"
    log = RecordLog(path)
    fill(log, 1)
    log.close()
    torn = b'{"n":4,"ts":"2026-08-01T09:'            # power lost mid-write
    with path.open("ab") as fh:
        fh.write(torn)
    assert not verify(path).ok
    log = RecordLog(path)
    log.close()
    result = verify(path)
    assert result.ok and result.records == 4
    last = json.loads(path.read_text().splitlines()[-1])
    assert last["type"] == "torn_tail" and last["data"]["bytes_lost"] == len(torn)

"""The patrol record: an append-only, hash-chained JSON-lines log with retention.

Each line is one record:

    {"n": 17, "ts": "2026-11-23T12:00:05.120Z", "type": "checkin", "device": "gate-north",
     "data": {...}, "prev": "<sha256 of record 16>", "hash": "<sha256 of this record>"}

`hash` is the SHA-256 of the record's canonical JSON without `hash` (sorted
keys, no blanks), and `prev` is the hash of the record before, so editing,
removing or reordering any record breaks the chain from there on. The first
record of a fresh log has `prev` = 64 zeros.

Retention drops records older than `retention_days` by rewriting the file
(atomically, `gateway.atomicfile.write_atomic`) behind an `anchor` line,
`{"anchor": true, "n": 41, "hash": "<hash of record 41, the last one dropped>",
"pruned": 41, "ts": ...}`, so what is kept still verifies. A torn last line
(power cut mid-write) is cut off when the log is opened and a `torn_tail` record
says how many bytes were lost, so the chain stays whole and nothing is hidden.

The hashes prove the log was not edited after the fact only as far as a copy
of a later hash exists elsewhere: the daily report event carries the chain head.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

from gateway.atomicfile import write_atomic
from gateway.clock import iso_utc, parse_iso_utc
from gateway.driver import Emission
from gateway.events import dumps_data

GENESIS = "0" * 64
FILE_NAME = "patrol-records.jsonl"


def record_hash(rec: dict[str, Any]) -> str:
    body = {k: v for k, v in rec.items() if k != "hash"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    records: int                 # records checked (anchor excluded)
    head: str                    # hash of the last good record
    bad_line: int | None = None  # 1-based line number of the first broken record
    bad_n: int | None = None     # its record number, when readable
    reason: str = ""

    def describe(self) -> str:
        if self.ok:
            return f"ok: {self.records} records, chain head {self.head}"
        n = f" (record n={self.bad_n})" if self.bad_n is not None else ""
        return f"broken at line {self.bad_line}{n}: {self.reason}"


def verify(path: Path) -> VerifyResult:
    """Check the whole chain; name the first record that does not fit."""
    prev, expect_n, count = GENESIS, 1, 0
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return VerifyResult(True, 0, GENESIS)
    with fh:
        for line_no, raw in enumerate(fh, start=1):
            bad = lambda reason, n=None: VerifyResult(False, count, prev, line_no, n, reason)  # noqa: E731
            if not raw.endswith(b"\n"):
                return bad("truncated line (no newline)")
            try:
                rec = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                return bad("not valid JSON")
            if not isinstance(rec, dict):
                return bad("not a JSON object")
            n = rec.get("n")
            if rec.get("anchor") is True:
                if line_no != 1 or not isinstance(n, int) or not isinstance(rec.get("hash"), str):
                    return bad("anchor line out of place or malformed", n if isinstance(n, int) else None)
                prev, expect_n = rec["hash"], n + 1
                continue
            if n != expect_n:
                return bad(f"record number {n!r}, expected {expect_n}", n if isinstance(n, int) else None)
            if rec.get("prev") != prev:
                return bad("prev does not match the hash of the record before", n)
            if rec.get("hash") != record_hash(rec):
                return bad("hash does not match the record's content (edited)", n)
            prev, expect_n, count = rec["hash"], expect_n + 1, count + 1
    return VerifyResult(True, count, prev)


def iter_records(path: Path) -> Iterator[dict[str, Any]]:
    """Every readable record (anchor excluded), for reports; does not verify."""
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return
    with fh:
        for raw in fh:
            try:
                rec = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                continue
            if isinstance(rec, dict) and not rec.get("anchor"):
                yield rec


class RecordLog:
    """Appends records durably (one fsync per `append_many`); prunes by age. Thread-safe."""

    def __init__(self, path: Path, retention_days: float = 90.0) -> None:
        self.path = path
        self.retention = timedelta(days=retention_days)
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._n, self._head, torn = self._scan_tail()
        self._fh = path.open("ab")
        if torn:
            self.append("torn_tail", "records", datetime.now(timezone.utc),
                        {"bytes_lost": len(torn), "sha256": hashlib.sha256(torn).hexdigest()})

    @property
    def head(self) -> str:
        return self._head

    @property
    def count(self) -> int:
        return self._n

    def _scan_tail(self) -> tuple[int, str, bytes]:
        """The last record's number and hash; cut a torn last line off (returned)."""
        if not self.path.exists():
            return 0, GENESIS, b""
        data = self.path.read_bytes()
        torn = b""
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            torn = data[cut:]
            with self.path.open("r+b") as fh:
                fh.truncate(cut)
                fh.flush()
                os.fsync(fh.fileno())
            data = data[:cut]
        lines = data.splitlines()
        if not lines:
            return 0, GENESIS, torn
        try:
            last = json.loads(lines[-1])
            return int(last["n"]), str(last["hash"]), torn
        except (ValueError, KeyError, TypeError):
            # a damaged last line: continue after it; verify() will name it
            return len(lines), hashlib.sha256(lines[-1]).hexdigest(), torn

    def append(self, type: str, device: str, ts: datetime, data: Any) -> dict[str, Any]:
        return self.append_many([Emission(device, type, "info", data, ts)])[0]

    def append_many(self, events: Sequence[Emission]) -> list[dict[str, Any]]:
        """Append several records in order with one fsync (what one engine step found)."""
        with self._lock:
            n, head = self._n, self._head
            recs: list[dict[str, Any]] = []
            for e in events:
                ts = e.ts if e.ts is not None else datetime.now(timezone.utc)
                rec: dict[str, Any] = {"n": n + 1, "ts": iso_utc(ts), "type": e.type, "device": e.device,
                                       "data": json.loads(dumps_data(e.data or {})), "prev": head}
                rec["hash"] = record_hash(rec)
                n, head = rec["n"], rec["hash"]
                recs.append(rec)
            if not recs:
                return recs
            self._fh.write(b"".join(json.dumps(r, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                                    .encode("utf-8") + b"\n" for r in recs))
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._n, self._head = n, head
            return recs

    def prune(self, now: datetime) -> int:
        """Drop records older than the retention; returns how many were dropped."""
        cutoff = now - self.retention
        with self._lock:
            lines = self.path.read_bytes().splitlines(keepends=True)
            anchor: dict[str, Any] | None = None
            drop = 0
            for i, raw in enumerate(lines):
                try:
                    rec = json.loads(raw)
                except ValueError:
                    break        # never prune past damage: the evidence stays
                if rec.get("anchor"):
                    anchor = rec
                    drop = i + 1
                    continue
                try:
                    if parse_iso_utc(rec["ts"]) >= cutoff:
                        break
                except (KeyError, ValueError, TypeError):
                    break
                anchor = {"anchor": True, "n": rec["n"], "hash": rec["hash"],
                          "pruned_through_ts": rec["ts"], "pruned_at": iso_utc(now)}
                drop = i + 1
            dropped = drop - (1 if lines and lines[0].startswith(b'{"anchor"') else 0)
            if dropped <= 0 or anchor is None:
                return 0
            kept = json.dumps(anchor, sort_keys=False, separators=(",", ":")).encode() + b"\n"
            write_atomic(self.path, kept + b"".join(lines[drop:]))
            self._fh.close()
            self._fh = self.path.open("ab")
            return dropped

    def close(self) -> None:
        with self._lock:
            self._fh.close()

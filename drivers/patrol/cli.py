"""`anfang patrol-verify` and `anfang patrol-report`: the patrol record log from the command line.

    anfang patrol-verify --config /etc/anfang/gateway.toml     # or --state-dir DIR, or --records FILE
    anfang patrol-report --date 2026-11-23 --config /etc/anfang/gateway.toml [--json]

The record log is `<state_dir>/drivers/patrol/patrol-records.jsonl`. With
`--config`, the state folder, the site's time zone and the plan (for the
planned round counts) come from the gateway config; without it, give
`--state-dir` (and `--timezone`), and the planned counts are the rounds the log
knows of. Exit 0 ok, 1 a broken chain (verify), 2 bad usage or config.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from drivers.patrol.plan import Plan
from drivers.patrol.records import FILE_NAME, verify
from drivers.patrol.report import format_report, report_data, report_from_log

DRIVER_NAME = "patrol"


class _Usage(Exception):
    """Bad usage or config: one line, exit 2."""


@dataclass
class _Target:
    records: Path
    tz: str
    plan: Plan | None


def _target(args: argparse.Namespace) -> _Target:
    tz = args.timezone
    plan: Plan | None = None
    if args.records:
        records = Path(args.records)
    elif args.config:
        from gateway.config import load_config
        from gateway.configfile import ConfigError
        try:
            cfg = load_config(args.config)
        except ConfigError as exc:
            raise _Usage(str(exc)) from None
        spec = cfg.drivers.get(DRIVER_NAME)
        if spec is not None:
            plan = spec.config.plan
        tz = tz or cfg.timezone
        records = cfg.state_dir / "drivers" / DRIVER_NAME / FILE_NAME
    elif args.state_dir:
        records = Path(args.state_dir) / "drivers" / DRIVER_NAME / FILE_NAME
    else:
        raise _Usage("give --config FILE, --state-dir DIR or --records FILE")
    tz = tz or "Asia/Shanghai"
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise _Usage(f"unknown time zone {tz!r}") from None
    return _Target(records, tz, plan)


def _common(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument("--config", help="the gateway config (gives state_dir, time zone and plan)")
    where.add_argument("--state-dir", help="the gateway's state_dir")
    where.add_argument("--records", help="the record log file itself")
    p.add_argument("--timezone", help="site time zone (default: from --config, else Asia/Shanghai)")


def add_commands(subparsers: Any) -> None:
    p = subparsers.add_parser("patrol-verify", help="check the patrol record log's hash chain")
    _common(p)
    p.set_defaults(func=cmd_verify)
    p = subparsers.add_parser("patrol-report", help="print a day's patrol compliance per route")
    _common(p)
    p.add_argument("--date", required=True, help="YYYY-MM-DD, 'today' or 'yesterday' (site time)")
    p.add_argument("--json", action="store_true", help="print the daily_report data as JSON")
    p.set_defaults(func=cmd_report)


def _fail(message: str, code: int) -> int:
    print(f"anfang: {message}", file=sys.stderr)
    return code


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        target = _target(args)
    except _Usage as exc:
        return _fail(str(exc), 2)
    if not target.records.exists():
        return _fail(f"no patrol record log at {target.records}", 2)
    result = verify(target.records)
    if not result.ok:
        return _fail(f"{target.records}: {result.describe()}", 1)
    print(f"{target.records}: {result.describe()}")
    return 0


def _parse_day(text: str, tz: str) -> date:
    today = datetime.now(timezone.utc).astimezone(ZoneInfo(tz)).date()
    if text == "today":
        return today
    if text == "yesterday":
        return today - timedelta(days=1)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _Usage(f"--date: expected YYYY-MM-DD, 'today' or 'yesterday', got {text!r}") from None


def cmd_report(args: argparse.Namespace) -> int:
    try:
        target = _target(args)
        day = _parse_day(args.date, target.tz)
    except _Usage as exc:
        return _fail(str(exc), 2)
    if not target.records.exists():
        return _fail(f"no patrol record log at {target.records}", 2)
    routes = report_from_log(target.records, day, target.plan)
    if args.json:
        print(json.dumps(report_data(day, routes), ensure_ascii=False))
    else:
        print(format_report(day, routes, target.tz))
    return 0

"""The `anfang` command: run, check-config, outbox, schema, and every installed package's commands.

The gateway's own commands are defined here. Every other sub-command (`sim`,
`chaos`, `detect`, the families' reports) comes from the entry-point group
`anfang.commands`, as drivers come from `anfang.drivers`: each entry names an
`add_commands(subparsers)` function, so an integrator's package brings its own
commands and this module imports none of them. They are loaded only when the
command line asks for something other than a gateway command (the entry point
named like that command first, the others only if it does not add it), which
keeps `anfang run` as lean as a gateway without them (start-up time, resident
memory).

Exit codes: 0 ok, 2 bad usage or bad config, 1 anything else. Errors are one
clear line on stderr (`anfang: ...`), never a bare traceback; `--debug` adds
tracebacks and debug logging for developers.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from gateway import __version__
from gateway.configfile import ConfigError

log = logging.getLogger("anfang")

COMMANDS_ENTRY_POINT_GROUP = "anfang.commands"    # name -> `add_commands(subparsers)`
# The commands defined here: for them no entry point of `anfang.commands` is loaded,
# which keeps `anfang run` lean (it loads only the drivers its config names).
CORE_COMMANDS = frozenset({"run", "check-config", "outbox", "schema"})
OPTIONS_WITH_VALUE = frozenset({"--log-level"})

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A failure to report as one line; `code` is the exit code."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def _setup_logging(level: str, debug: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if debug else getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not debug:
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


def _print_config_error(exc: ConfigError) -> int:
    for problem in exc.problems:
        print(f"{exc.source + ': ' if exc.source else ''}{problem}", file=sys.stderr)
    return EXIT_USAGE


# -- anfang run ---------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from gateway.config import load_config
    from gateway.supervisor import Supervisor

    import faulthandler
    faulthandler.enable()   # a watchdog SIGABRT leaves every thread's stack in the journal

    config = load_config(args.config, _driver_types(args, args.config))
    supervisor = Supervisor(config)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    supervisor.run(stop)
    return EXIT_OK


# -- anfang check-config --------------------------------------------------------
def cmd_check_config(args: argparse.Namespace) -> int:
    from gateway.config import load_config

    config = load_config(args.file, _driver_types(args, args.file))
    drivers = ", ".join(config.drivers) or "no drivers"
    print(f"{args.file}: ok (site {config.site}, gateway {config.gateway}; {drivers})")
    return EXIT_OK


def _driver_types(args: argparse.Namespace, path: str) -> dict[str, Any] | None:
    """With `--sim-drivers`, the driver types the config needs, the simulator's test drivers
    (`anfang.sim_drivers`: `sim_probe`) included; otherwise None: the installed drivers only."""
    if not args.sim_drivers:
        return None
    from sim.registry import driver_types   # the CLI may import any layer
    from gateway.configfile import load_toml

    raw, _problems = load_toml(path)        # load_config reports the problems
    return driver_types(raw)


# -- anfang outbox ------------------------------------------------------------------
def cmd_outbox(args: argparse.Namespace) -> int:
    import sqlite3

    from gateway.lanes import EvidenceSpool
    from gateway.store import read_outbox

    state = Path(args.state_dir)
    db = state / "events.db"
    if not db.exists():
        raise CliError(f"no event buffer at {db} (is --state-dir the gateway's state_dir?)")
    try:
        depth, events = read_outbox(db, args.limit)
    except sqlite3.DatabaseError as exc:
        raise CliError(f"cannot read the event buffer {db}: {exc}") from exc
    spool = state / "evidence-outbox"
    evidence = EvidenceSpool(spool).items() if spool.exists() else []
    if args.json:
        print(json.dumps({"events": depth.count, "bytes": depth.bytes, "last_seq": depth.last_seq,
                          "oldest_age_s": round(time.time() - depth.oldest_created, 1) if depth.oldest_created else None,
                          "evidence": [{"event_id": e.event_id, "name": e.name, "bytes": e.size} for e in evidence],
                          "first": [e.to_dict() for e in events]}))
        return EXIT_OK
    age = f", oldest {time.time() - depth.oldest_created:.0f} s old" if depth.oldest_created else ""
    print(f"{depth.count} event(s) not yet acknowledged by the broker ({depth.bytes} bytes{age}); "
          f"last seq given: {depth.last_seq}")
    for e in events:
        print(f"  seq {e.seq:>8}  {e.ts}  {e.severity:<8} {e.cls}/{e.device}  {e.type}")
    if depth.count > len(events):
        print(f"  ... and {depth.count - len(events)} more")
    print(f"{len(evidence)} evidence file(s) waiting" + ("" if not evidence else ":"))
    for item in evidence:
        print(f"  {item.event_id}  {item.name}  {item.size} bytes")
    return EXIT_OK


# -- anfang schema ----------------------------------------------------------------------
def cmd_schema(_args: argparse.Namespace) -> int:
    from gateway.events import event_schema

    print(json.dumps(event_schema(), indent=2))
    return EXIT_OK


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; for a gateway `command` without the plug-ins' commands, for another one
    first the entry point of that name, and all of them only if it does not add `command`."""
    parser = argparse.ArgumentParser(prog="anfang", description="anfang-gateway: building security gateway")
    parser.add_argument("--version", action="version", version=f"anfang-gateway {__version__}")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    parser.add_argument("--debug", action="store_true", help="tracebacks and debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    sim_drivers_help = "also accept the simulator's test drivers ([[sim_probe]]): for tests and trials"
    p = sub.add_parser("run", help="run the gateway in the foreground")
    p.add_argument("--config", required=True, help="gateway config file (TOML)")
    p.add_argument("--sim-drivers", action="store_true", help=sim_drivers_help)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check-config", help="validate a config file; exit 2 with one line per problem")
    p.add_argument("file")
    p.add_argument("--sim-drivers", action="store_true", help=sim_drivers_help)
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("outbox", help="show what is buffered and not yet acknowledged by the broker")
    p.add_argument("--state-dir", required=True)
    p.add_argument("--limit", type=int, default=20, help="events to list")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_outbox)

    p = sub.add_parser("schema", help="print the JSON Schema of an event")
    p.set_defaults(func=cmd_schema)

    if command not in CORE_COMMANDS:
        _add_plugin_commands(sub, command)
    return parser


def _add_plugin_commands(sub: Any, command: str | None) -> None:
    """`anfang.commands` entry points add their sub-commands: the one named `command` first,
    the others unless it added `command`. One that cannot load is skipped."""
    from importlib.metadata import entry_points

    eps = sorted(entry_points(group=COMMANDS_ENTRY_POINT_GROUP), key=lambda e: (e.name != command, e.name))
    for ep in eps:
        if command is not None and command in sub.choices:
            return
        try:
            ep.load()(sub)
        except ImportError as exc:      # an optional extra not installed: its commands are absent
            log.debug("commands of %s (%s) unavailable: %s", ep.name, ep.value, exc)
        except Exception as exc:
            print(f"anfang: commands of {ep.name} ({ep.value}) cannot be loaded: {type(exc).__name__}: {exc}",
                  file=sys.stderr)


def command_word(argv: Sequence[str]) -> str | None:
    """The sub-command named on a command line (the first word that is not an option or its value)."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in OPTIONS_WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(command_word(argv))
    args = parser.parse_args(argv)
    _setup_logging(args.log_level, args.debug)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(func(args) or 0)
    except ConfigError as exc:
        return _print_config_error(exc)
    except CliError as exc:
        print(f"anfang: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return EXIT_OK
    except Exception as exc:
        if args.debug:
            raise
        print(f"anfang: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())

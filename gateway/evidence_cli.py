"""`anfang evidence-key` and `anfang evidence-verify`: the gateway's public key, and checking received evidence.

    anfang evidence-key --config /etc/anfang/gateway.toml      # or --state-dir DIR; --pem, --json
    anfang evidence-verify DIR [--key KEY]                       # KEY: base64, a PEM, or a file holding either

`evidence-key` only reads: the key is made by the gateway on its first start
(as its own user, mode 0600). `evidence-verify` checks every manifest in DIR
(docs/evidence.md) and prints one line per problem. Exit 0: every set
matches; 1: something does not; 2: bad usage (no such folder, no manifest
in it, an unreadable key).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gateway.manifest import verify_folder
from gateway.signing import KEY_FILE, EvidenceKey, EvidenceKeyError, PublicKey

DEFAULT_STATE_DIR = Path("/var/lib/anfang")
EXIT_OK, EXIT_MISMATCH, EXIT_USAGE = 0, 1, 2


class _Usage(Exception):
    """Bad usage or config: one line, exit 2."""


def _state_dir(args: argparse.Namespace) -> Path:
    if args.config:
        from gateway.config import load_config
        from gateway.configfile import ConfigError
        try:
            return load_config(args.config).state_dir
        except ConfigError as exc:
            raise _Usage(str(exc)) from None
    return Path(args.state_dir) if args.state_dir else DEFAULT_STATE_DIR


def cmd_evidence_key(args: argparse.Namespace) -> int:
    try:
        state_dir = _state_dir(args)
    except _Usage as exc:
        return _fail(str(exc), EXIT_USAGE)
    path = state_dir / KEY_FILE
    if not path.exists():
        return _fail(f"no evidence key in {state_dir} yet: the gateway makes it on its first start", EXIT_MISMATCH)
    try:
        public = EvidenceKey.load(path).public
    except EvidenceKeyError as exc:
        return _fail(str(exc), EXIT_MISMATCH)
    if args.pem:
        print(public.pem(), end="")
    elif args.json:
        print(json.dumps(public.to_dict()))
    else:
        print(f"{public.b64}\n{public.fingerprint}")
    return EXIT_OK


def _trusted_key(text: str | None) -> PublicKey | None:
    if text is None:
        return None
    candidate = Path(text)
    try:
        if candidate.is_file():
            text = candidate.read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise _Usage(f"--key {candidate}: cannot read ({exc.strerror or exc})") from None
    try:
        return PublicKey.parse(text)
    except EvidenceKeyError as exc:
        raise _Usage(f"--key: {exc}") from None


def cmd_evidence_verify(args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    try:
        trusted = _trusted_key(args.key)
        if not folder.is_dir():
            raise _Usage(f"{folder}: not a folder")
        verdicts = verify_folder(folder, trusted)
        if not verdicts:
            raise _Usage(f"{folder}: no evidence manifest (*.manifest) in it")
    except _Usage as exc:
        return _fail(str(exc), EXIT_USAGE)
    for v in verdicts:
        head = f"{v.manifest.name}: event {v.event_id} seq {v.seq}, {len(v.files)} file(s)"
        print(f"{'ok  ' if v.ok else 'FAIL'}  {head}")
        for line in v.problems:
            print(f"FAIL  {line}")
        for line in v.notes:
            print(f"note  {line}")
    bad = sum(1 for v in verdicts if not v.ok)
    if bad:
        print(f"anfang: {bad} of {len(verdicts)} evidence set(s) do not match", file=sys.stderr)
        return EXIT_MISMATCH
    return EXIT_OK


def _fail(message: str, code: int) -> int:
    print(f"anfang: {message}", file=sys.stderr)
    return code


def add_commands(sub: Any) -> None:
    p = sub.add_parser("evidence-key", help="print this gateway's public evidence key")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--config", help="gateway config file (its state_dir holds the key)")
    where.add_argument("--state-dir", help=f"the gateway's state folder (default {DEFAULT_STATE_DIR})")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--pem", action="store_true", help="as a PEM public key (for openssl)")
    fmt.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evidence_key)

    p = sub.add_parser("evidence-verify", help="check received evidence files against their signed manifests")
    p.add_argument("dir", help="folder holding the manifest(s), signature(s) and evidence files")
    p.add_argument("--key", help="the gateway's public key (base64 or PEM, or a file holding it); "
                                 "without it only the key named in the manifest is used")
    p.set_defaults(func=cmd_evidence_verify)

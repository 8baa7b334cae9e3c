"""Signed evidence manifests: what a set of evidence files is, and the check a receiver runs on it.

    paths = write_manifest(folder / stem, manifest, key)   # <stem>.manifest and <stem>.manifest.sig
    results = verify_folder(folder, trusted_key)           # one result per manifest found

A manifest is a JSON object naming the event it belongs to (`event`: id,
seq, class, device, type, ts), its files (`files`: name, kind,
content_type, sha256, bytes), the gateway's public key (`key`) and whatever
the driver that made the evidence adds (a camera: its calibration hash, the
caption, the clip's span). The signature is Ed25519 over the manifest file's
exact bytes, stored beside it in `<stem>.manifest.sig` (64 raw bytes), so
any tool can check it without re-serialising JSON:

    openssl pkeyutl -verify -pubin -inkey gateway.pub.pem -rawin \
        -in X.manifest -sigfile X.manifest.sig

`verify_folder` says exactly what does not match: a missing file, a size or
SHA-256 that differs, a signature that fails, a key other than the trusted one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from gateway.atomicfile import write_atomic
from gateway.signing import EvidenceKey, EvidenceKeyError, PublicKey

FORMAT = "anfang-evidence/1"
MANIFEST_SUFFIX = ".manifest"
SIGNATURE_SUFFIX = ".manifest.sig"
CONTENT_TYPE = "application/json"
SIGNATURE_CONTENT_TYPE = "application/octet-stream"


def sha256_file(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_entry(path: Path, kind: str, content_type: str, **extra: Any) -> dict[str, Any]:
    """A manifest's `files` entry for a closed, final file (hashed here)."""
    return {"name": path.name, "kind": kind, "content_type": content_type, "sha256": sha256_file(path),
            "bytes": path.stat().st_size, **extra}


def build_manifest(*, site: str, gateway: str, event: Mapping[str, Any], files: Sequence[Mapping[str, Any]],
                   created: str, key: PublicKey | None, **detail: Any) -> dict[str, Any]:
    """The manifest object; `detail` holds the producing driver's own fields."""
    return {"format": FORMAT, "site": site, "gateway": gateway, "event": dict(event),
            "files": [dict(f) for f in files], "created": created,
            "key": key.to_dict() if key is not None else None, **detail}


def manifest_paths(stem: Path) -> tuple[Path, Path]:
    return stem.with_name(stem.name + MANIFEST_SUFFIX), stem.with_name(stem.name + SIGNATURE_SUFFIX)


def write_manifest(stem: Path, manifest: Mapping[str, Any], key: EvidenceKey | None) -> tuple[Path, Path | None]:
    """Write `<stem>.manifest` and, with a key, its signature `<stem>.manifest.sig` (both atomically)."""
    path, sig_path = manifest_paths(stem)
    data = (json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
    if key is None:
        write_atomic(path, data)
        return path, None
    write_atomic(sig_path, key.sign(data))   # the signature first: a manifest never stands without it
    write_atomic(path, data)
    return path, sig_path


# -- checking a received set ------------------------------------------------------

@dataclass
class Verdict:
    """What `verify_manifest` found: `problems` (each one line) make it fail; `notes` do not."""

    manifest: Path
    event_id: str | None = None
    seq: int | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _safe_name(name: Any) -> bool:
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name


def verify_manifest(path: Path, trusted: PublicKey | None = None) -> Verdict:
    """Check one manifest: its signature (against `trusted`, else the key it names) and every file it lists."""
    verdict = Verdict(path)
    try:
        data = path.read_bytes()
        manifest = json.loads(data)
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        verdict.problems.append(f"{path.name}: not a readable manifest ({exc})")
        return verdict
    event = manifest.get("event") or {}
    verdict.event_id, verdict.seq = event.get("id"), event.get("seq")
    if manifest.get("format") != FORMAT:
        verdict.problems.append(f"{path.name}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    _check_signature(verdict, data, manifest, path, trusted)
    for entry in manifest.get("files") or []:
        _check_file(verdict, path.parent, entry)
    return verdict


def _check_signature(verdict: Verdict, data: bytes, manifest: Mapping[str, Any], path: Path,
                     trusted: PublicKey | None) -> None:
    sig_path = path.with_name(path.name[: -len(MANIFEST_SUFFIX)] + SIGNATURE_SUFFIX)
    named = None
    try:
        named = PublicKey.parse(str((manifest.get("key") or {}).get("public_key") or ""))
    except EvidenceKeyError:
        pass
    if trusted is not None and named is not None and named != trusted:
        verdict.problems.append(f"{path.name}: signed with key {named.fingerprint}, "
                                f"not the trusted key {trusted.fingerprint}")
    key = trusted or named
    if key is None:
        verdict.problems.append(f"{path.name}: names no public key and none was given (--key)")
        return
    try:
        signature = sig_path.read_bytes()
    except OSError:
        verdict.problems.append(f"{sig_path.name}: missing (the manifest is not signed)")
        return
    if not key.verify(signature, data):
        verdict.problems.append(f"{path.name}: the signature does not match key {key.fingerprint} "
                                "(the manifest was changed, or signed by another key)")
    elif trusted is None:
        verdict.notes.append(f"{path.name}: signature good for the key it names, {key.fingerprint}; "
                             "pass --key to check that this is the gateway's key")


def _check_file(verdict: Verdict, folder: Path, entry: Any) -> None:
    name = entry.get("name") if isinstance(entry, dict) else None
    if not _safe_name(name):
        verdict.problems.append(f"the manifest lists a file with an unusable name: {name!r}")
        return
    verdict.files.append(name)
    target = folder / name
    if not target.is_file():
        verdict.problems.append(f"{name}: missing")
        return
    size = target.stat().st_size
    if entry.get("bytes") is not None and size != entry["bytes"]:
        verdict.problems.append(f"{name}: {size} bytes, the manifest says {entry['bytes']}")
    digest = sha256_file(target)
    if digest != entry.get("sha256"):
        verdict.problems.append(f"{name}: SHA-256 {digest[:16]}... differs from the manifest's "
                                f"{str(entry.get('sha256'))[:16]}... (the file was changed or replaced)")


def verify_folder(folder: Path, trusted: PublicKey | None = None) -> list[Verdict]:
    """Every manifest in `folder`, checked; files no manifest names are reported as notes."""
    verdicts = [verify_manifest(p, trusted) for p in sorted(folder.glob("*" + MANIFEST_SUFFIX))]
    named = {n for v in verdicts for n in v.files}
    own = {p.name for v in verdicts for p in manifest_paths(v.manifest.with_name(
        v.manifest.name[: -len(MANIFEST_SUFFIX)]))}
    stray = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name not in named | own)
    if verdicts and stray:
        verdicts[-1].notes.append("not named by any manifest: " + ", ".join(stray))
    return verdicts

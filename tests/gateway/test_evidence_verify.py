"""The gateway's evidence key and `anfang evidence-verify`: a received set is checked file by file and by signature.

Sets are made the way a camera makes them (a Pillow snapshot, a PyAV clip,
a manifest signed with the gateway's key) and then altered as an attacker or
a broken transfer would: a byte of the clip changed, the snapshot swapped
for another picture, the manifest edited, the signature lost, another
gateway's key.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from detection.snapshot import draw_snapshot, write_jpeg
from gateway.cli import main
from gateway.manifest import build_manifest, file_entry, write_manifest
from gateway.signing import KEY_FILE, EvidenceKey, EvidenceKeyError, PublicKey

STEM = "tower-3_20261123T050507123Z"


def make_set(folder: Path, key: EvidenceKey, seq: int = 42) -> dict[str, Path]:
    """A snapshot, a clip and their signed manifest, as the camera writes them."""
    pytest.importorskip("av")
    from detection.evidence import write_clip
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seq)
    snap = write_jpeg(folder / f"{STEM}.jpg", draw_snapshot(rng.integers(0, 255, (90, 160), dtype=np.uint8),
                                                            [(0, 80.0, 10.0), (1, 80.0, 70.0)], [(1, 80.0), (2, 40.0)]))
    clip = write_clip(folder / STEM, [rng.integers(0, 255, (48, 64), dtype=np.uint8) for _ in range(8)], 8.0)
    manifest = build_manifest(site="s1", gateway="gw1",
                              event={"id": "0192f5d6-7a3b-7c4d-8e9f-0123456789ab", "seq": seq, "class": "camera",
                                     "device": "tower-3", "type": "thrown_object", "ts": "2026-11-23T05:05:07.123Z"},
                              files=[file_entry(snap, "snapshot", "image/jpeg"), file_entry(clip, "clip", "video/mp4")],
                              created="2026-11-23T05:05:12.000Z", key=key.public, camera="tower-3",
                              calibration_sha256="ab" * 32)
    man, sig = write_manifest(folder / STEM, manifest, key)
    assert sig is not None
    return {"snapshot": snap, "clip": clip, "manifest": man, "signature": sig}


def verify(capsys: pytest.CaptureFixture[str], folder: Path, *extra: str) -> tuple[int, list[str], str]:
    code = main(["evidence-verify", str(folder), *extra])
    out = capsys.readouterr()
    return code, out.out.splitlines(), out.err


@pytest.fixture
def key(tmp_path: Path) -> EvidenceKey:
    return EvidenceKey.load_or_create(tmp_path / "state")


def test_an_untouched_set_verifies(tmp_path: Path, key: EvidenceKey, capsys: pytest.CaptureFixture[str]) -> None:
    make_set(tmp_path / "in", key)
    code, lines, _ = verify(capsys, tmp_path / "in", "--key", key.public.b64)
    assert code == 0, lines
    assert lines == [f"ok    {STEM}.manifest: event 0192f5d6-7a3b-7c4d-8e9f-0123456789ab seq 42, 2 file(s)"]


def test_a_tampered_clip_fails_naming_the_clip(tmp_path: Path, key: EvidenceKey,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    files = make_set(tmp_path / "in", key)
    data = bytearray(files["clip"].read_bytes())
    data[len(data) // 2] ^= 0x01                      # one bit, same size
    files["clip"].write_bytes(bytes(data))
    code, lines, err = verify(capsys, tmp_path / "in", "--key", key.public.b64)
    assert code == 1 and "1 of 1 evidence set(s) do not match" in err
    fails = [ln for ln in lines if ln.startswith("FAIL  ") and "manifest: event" not in ln]
    assert len(fails) == 1
    assert fails[0].startswith(f"FAIL  {STEM}.mp4: SHA-256 ") and "differs from the manifest's" in fails[0]


def test_a_swapped_snapshot_fails_naming_the_snapshot(tmp_path: Path, key: EvidenceKey,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    files = make_set(tmp_path / "in", key)
    other = make_set(tmp_path / "other", key, seq=43)    # a real snapshot of another event, same name
    shutil.copyfile(other["snapshot"], files["snapshot"])
    code, lines, _ = verify(capsys, tmp_path / "in", "--key", key.public.b64)
    assert code == 1
    problems = [ln for ln in lines if ln.startswith(f"FAIL  {STEM}.jpg: ")]
    assert any("SHA-256" in ln and "changed or replaced" in ln for ln in problems), lines
    assert not any(ln.startswith(f"FAIL  {STEM}.mp4") for ln in lines)   # the clip is still fine


def test_another_gateways_key_fails(tmp_path: Path, key: EvidenceKey, capsys: pytest.CaptureFixture[str]) -> None:
    make_set(tmp_path / "in", key)
    stranger = EvidenceKey.generate().public
    code, lines, _ = verify(capsys, tmp_path / "in", "--key", stranger.b64)
    assert code == 1
    text = "\n".join(lines)
    assert f"signed with key {key.public.fingerprint}, not the trusted key {stranger.fingerprint}" in text
    assert f"the signature does not match key {stranger.fingerprint}" in text


def test_a_set_signed_by_an_impostor_who_names_the_right_key_fails(tmp_path: Path, key: EvidenceKey,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    files = make_set(tmp_path / "in", key)
    impostor = EvidenceKey.generate()
    files["signature"].write_bytes(impostor.sign(files["manifest"].read_bytes()))
    code, lines, _ = verify(capsys, tmp_path / "in")           # no --key: the key the manifest names
    assert code == 1 and any("the signature does not match key" in ln for ln in lines)


def test_an_edited_manifest_fails_its_signature(tmp_path: Path, key: EvidenceKey,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    files = make_set(tmp_path / "in", key)
    doc = json.loads(files["manifest"].read_text())
    doc["event"]["seq"] = 41                                   # claim another event
    files["manifest"].write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    code, lines, _ = verify(capsys, tmp_path / "in", "--key", key.public.b64)
    assert code == 1 and any("the manifest was changed, or signed by another key" in ln for ln in lines)


def test_missing_files_and_signature_are_named(tmp_path: Path, key: EvidenceKey,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    files = make_set(tmp_path / "in", key)
    files["clip"].unlink()
    files["signature"].unlink()
    code, lines, _ = verify(capsys, tmp_path / "in", "--key", key.public.b64)
    assert code == 1
    assert f"FAIL  {STEM}.mp4: missing" in lines
    assert f"FAIL  {STEM}.manifest.sig: missing (the manifest is not signed)" in lines


def test_without_a_trusted_key_a_good_set_passes_with_a_note(tmp_path: Path, key: EvidenceKey,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    make_set(tmp_path / "in", key)
    (tmp_path / "in" / "readme.txt").write_text("from the platform")
    code, lines, _ = verify(capsys, tmp_path / "in")
    assert code == 0
    assert any(ln.startswith("note  ") and "pass --key" in ln and key.public.fingerprint in ln for ln in lines)
    assert "note  not named by any manifest: readme.txt" in lines


def test_bad_usage_exits_2(tmp_path: Path, key: EvidenceKey, capsys: pytest.CaptureFixture[str]) -> None:
    assert verify(capsys, tmp_path / "nowhere")[0] == 2
    (tmp_path / "empty").mkdir()
    code, _, err = verify(capsys, tmp_path / "empty")
    assert code == 2 and "no evidence manifest" in err
    make_set(tmp_path / "in", key)
    code, _, err = verify(capsys, tmp_path / "in", "--key", "not-a-key")
    assert code == 2 and err.strip() == "anfang: --key: not a base64 Ed25519 public key"


def test_key_as_a_pem_file_and_through_the_installed_command(tmp_path: Path, key: EvidenceKey) -> None:
    make_set(tmp_path / "in", key)
    pem = tmp_path / "gw1.pub.pem"
    pem.write_text(key.public.pem())
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "evidence-verify", str(tmp_path / "in"),
                        "--key", str(pem)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("ok    ")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")
def test_openssl_verifies_the_signature_too(tmp_path: Path, key: EvidenceKey) -> None:
    files = make_set(tmp_path / "in", key)
    pem = tmp_path / "pub.pem"
    pem.write_text(key.public.pem())
    r = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(pem), "-rawin",
                        "-in", str(files["manifest"]), "-sigfile", str(files["signature"])],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "Signature Verified Successfully" in r.stdout, r.stdout + r.stderr


# -- the key -----------------------------------------------------------------------

def test_key_is_made_once_private_and_kept(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = EvidenceKey.load_or_create(state)
    path = state / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert EvidenceKey.load_or_create(state).public == first.public      # the next start uses the same key
    assert [p.name for p in state.iterdir()] == [KEY_FILE]               # no temporary file left


def test_a_broken_key_file_is_reported_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE
    path.write_text("-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n")
    with pytest.raises(EvidenceKeyError, match=f"{KEY_FILE}: not a PEM private key"):
        EvidenceKey.load_or_create(tmp_path)
    assert "garbage" in path.read_text()


def test_evidence_key_prints_the_public_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    assert main(["evidence-key", "--state-dir", str(state)]) == 1
    assert "no evidence key" in capsys.readouterr().err
    key = EvidenceKey.load_or_create(state)
    assert main(["evidence-key", "--state-dir", str(state)]) == 0
    assert capsys.readouterr().out.splitlines() == [key.public.b64, key.public.fingerprint]
    assert main(["evidence-key", "--state-dir", str(state), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == key.public.to_dict()
    assert main(["evidence-key", "--state-dir", str(state), "--pem"]) == 0
    assert PublicKey.parse(capsys.readouterr().out) == key.public
    cfg = tmp_path / "gw.toml"
    cfg.write_text(f'[gateway]\nsite = "s1"\nid = "gw1"\nstate_dir = "{state}"\n')
    assert main(["evidence-key", "--config", str(cfg)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == key.public.b64
    assert os.stat(state / KEY_FILE).st_mode & 0o077 == 0      # reading it changed nothing

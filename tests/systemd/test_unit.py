"""The systemd unit, sysusers/tmpfiles files and install script, checked with
systemd's own tools (systemd-analyze, systemd-sysusers, systemd-tmpfiles,
offline: systemd need not be PID 1) and by running install.sh into a
throwaway root."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "anfang.service"
INSTALL = REPO / "systemd" / "install.sh"

EXPOSURE_MAX = 2.0
"""Measured 1.5 ("OK", the band from 1.0 to 4.9; below 1.0 is "SAFE", out of
reach for a service that needs the network) with systemd 252. Past 2.0 a
hardening line was lost."""

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze not installed")
needs_sysusers = pytest.mark.skipif(shutil.which("systemd-sysusers") is None,
                                    reason="systemd-sysusers not installed")


def unit_lines(text: str) -> list[tuple[str, str]]:
    """(key, value) for each assignment of a unit file, in order (keys repeat)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.append((key.strip(), value.strip()))
    return out


def unit_value(key: str) -> str:
    values = [v for k, v in unit_lines(UNIT.read_text()) if k == key]
    assert len(values) == 1, f"{key} appears {len(values)} times"
    return values[0]


def render_unit(tmp_path: Path, text: str | None = None) -> Path:
    """The unit with ExecStart pointing at a command that exists here
    (verify checks that the binary is executable)."""
    anfang = Path(sys.executable).parent / "anfang"
    exe = str(anfang) if anfang.exists() else shutil.which("true") or "/bin/true"
    text = (text or UNIT.read_text()).replace("/opt/anfang/venv/bin/anfang", exe)
    out = tmp_path / "anfang.service"
    out.write_text(text)
    return out


# --- the unit ----------------------------------------------------------------------


@needs_analyze
def test_unit_verifies_clean(tmp_path: Path) -> None:
    unit = render_unit(tmp_path)
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    complaints = [line for line in (r.stdout + r.stderr).splitlines() if "anfang" in line]
    assert r.returncode == 0 and not complaints, r.stdout + r.stderr


@needs_analyze
def test_verify_would_catch_a_misspelled_setting(tmp_path: Path) -> None:
    # the check above is only worth something if verify complains about typos
    bad = UNIT.read_text().replace("LockPersonality=yes", "LockPersonalty=yes")
    r = subprocess.run(["systemd-analyze", "verify", str(render_unit(tmp_path, bad))],
                       capture_output=True, text=True, timeout=60)
    assert "LockPersonalty" in r.stdout + r.stderr


def exposure(unit: Path) -> float:
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
                       capture_output=True, text=True, timeout=60)
    if "--offline" in r.stderr and "unrecognized" in r.stderr:
        pytest.skip("systemd-analyze too old for --offline (needs systemd >= 250)")
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout)
    assert m, r.stdout[-2000:] + r.stderr
    return float(m.group(1))


@needs_analyze
def test_security_exposure_is_ok(tmp_path: Path) -> None:
    score = exposure(render_unit(tmp_path))
    assert score <= EXPOSURE_MAX, f"exposure {score} > {EXPOSURE_MAX}: a hardening setting was lost"
    # the figure recorded in the unit's comment is not stale by more than rounding
    recorded = re.search(r"exposure level for anfang.service: ([0-9.]+)", UNIT.read_text())
    assert recorded and float(recorded.group(1)) <= EXPOSURE_MAX


@needs_analyze
def test_security_score_notices_a_lost_setting(tmp_path: Path) -> None:
    weaker = "\n".join(line for line in UNIT.read_text().splitlines()
                       if not line.startswith(("SystemCallFilter=", "CapabilityBoundingSet=")))
    assert exposure(render_unit(tmp_path, weaker)) > EXPOSURE_MAX


def test_unit_paths_agree_with_install_script_and_example_config() -> None:
    # a mismatch here is a service that never starts on a freshly installed Pi
    script = INSTALL.read_text()
    venv = re.search(r"^VENV=(\S+)$", script, re.M).group(1)
    config = re.search(r"^CONFIG=(\S+)$", script, re.M).group(1)
    assert unit_value("ExecStart") == f"{venv}/bin/anfang run --config {config}"
    example = tomllib.loads((REPO / "examples" / "gateway.toml").read_text())
    assert example["gateway"]["state_dir"] == "/var/lib/" + unit_value("StateDirectory")
    assert config.startswith("/etc/" + unit_value("ConfigurationDirectory") + "/")


def test_unit_is_a_watched_notify_service() -> None:
    assert unit_value("Type") == "notify"
    assert unit_value("NotifyAccess") == "main"
    assert int(unit_value("WatchdogSec")) == 30
    assert unit_value("Restart") == "always"
    assert unit_value("User") == unit_value("Group") == "anfang"
    assert set(unit_value("SupplementaryGroups").split()) == {"gpio", "dialout", "video"}
    sysusers = (REPO / "systemd" / "anfang.sysusers").read_text()
    for group in ("gpio", "dialout", "video"):
        # the unit fails with 216/GROUP if a supplementary group is missing
        assert re.search(rf"^m anfang {group}$", sysusers, re.M), group


# --- install.sh ----------------------------------------------------------------------


def run_install(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(["sh", str(INSTALL), *args], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def snapshot(root: Path) -> dict[str, tuple[int, int, int, bytes | str]]:
    """Every file under root but the venv: mode, owner, group, content."""
    out: dict[str, tuple[int, int, int, bytes | str]] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if rel.startswith("opt/anfang/venv/") or rel == "etc/.pwd.lock":
            continue
        st = p.lstat()
        body: bytes | str = os.readlink(p) if p.is_symlink() else p.read_bytes() if p.is_file() else b""
        out[rel] = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, body)
    return out


@needs_sysusers
def test_install_into_prefix_then_again(tmp_path: Path) -> None:
    root = tmp_path / "root"
    first = run_install("--prefix", str(root), "--no-pi", "--skip-pip", "--python", sys.executable)
    assert "systemctl enable --now anfang" in first.stdout  # next steps printed

    unit = root / "etc/systemd/system/anfang.service"
    assert unit.read_text() == UNIT.read_text()
    assert (root / "etc/sysusers.d/anfang.conf").read_text() == (REPO / "systemd/anfang.sysusers").read_text()
    assert (root / "etc/tmpfiles.d/anfang.conf").read_text() == (REPO / "systemd/anfang.tmpfiles").read_text()
    assert (root / "opt/anfang/venv/bin/python").exists()
    assert os.readlink(root / "usr/local/bin/anfang") == "/opt/anfang/venv/bin/anfang"

    passwd = {line.split(":")[0]: line.split(":") for line in (root / "etc/passwd").read_text().splitlines()}
    groups = {line.split(":")[0]: line.split(":") for line in (root / "etc/group").read_text().splitlines()}
    user = passwd["anfang"]
    assert user[5] == "/var/lib/anfang" and user[6].endswith("nologin")
    uid, gid = int(user[2]), int(user[3])
    assert uid < 1000, "a system user"
    for g in ("gpio", "dialout", "video"):
        assert "anfang" in groups[g][3].split(","), g

    config = root / "etc/anfang/gateway.toml"
    assert config.read_bytes() == (REPO / "examples/gateway.toml").read_bytes()
    st = config.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640
    d = (root / "etc/anfang").stat()
    assert stat.S_IMODE(d.st_mode) == 0o750
    state = (root / "var/lib/anfang").stat()
    assert stat.S_IMODE(state.st_mode) == 0o750
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (0, gid)        # root writes it, the gateway reads it
        assert (d.st_uid, d.st_gid) == (0, gid)
        assert (state.st_uid, state.st_gid) == (uid, gid)

    # the technician edits the config; installing again (an upgrade) keeps it
    # and changes nothing else
    config.write_text(config.read_text() + "\n# edited on site\n")
    before = snapshot(root)
    second = run_install("--prefix", str(root), "--no-pi", "--skip-pip", "--python", sys.executable)
    assert "exists: kept" in second.stdout and "exists: reusing it" in second.stdout
    assert snapshot(root) == before


def test_dry_run_changes_nothing_and_says_what_it_would_do(tmp_path: Path) -> None:
    root = tmp_path / "root"
    r = run_install("--prefix", str(root), "--pi", "--dry-run", "--python", sys.executable)
    assert not root.exists()
    assert "venv --system-site-packages" in r.stdout   # apt's libcamera visible on a Pi
    assert re.search(r"pip install --upgrade \S+\[pi\]", r.stdout)
    assert "systemd-sysusers" in r.stdout
    assert "nothing was changed" in r.stdout


def test_bad_option_is_one_line_and_exit_2() -> None:
    r = subprocess.run(["sh", str(INSTALL), "--frobnicate"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "--frobnicate" in r.stderr


@pytest.mark.soak
@needs_sysusers
def test_full_install_gives_a_working_anfang_command(tmp_path: Path) -> None:
    """The real pip install (needs the package index or a wheel cache): the
    installed command checks the installed config as the service would."""
    root = tmp_path / "root"
    had_build_dir = (REPO / "build").exists()
    run_install("--prefix", str(root), "--no-pi", "--python", sys.executable, timeout=600)
    anfang = root / "opt/anfang/venv/bin/anfang"
    r = subprocess.run([str(anfang), "check-config", str(root / "etc/anfang/gateway.toml")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    # built from a copy: nothing root-owned left in the technician's checkout
    assert had_build_dir or not (REPO / "build").exists()

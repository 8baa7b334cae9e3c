"""Replacing a file so that a power cut leaves the old version or the new one, never half of either.

Every state file the gateway keeps (arm states, the seq reservation, patrol
record prunes, evidence manifests, calibrations written from the page) goes
through `write_atomic`: write a temporary file in the same folder, fsync it,
rename it over the target, fsync the folder (so the rename itself is on
disk). Without the two fsyncs a power cut after the rename can leave an
empty or truncated file on ext4 and on SD cards.
"""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(folder: Path | str) -> None:
    """Make a rename or a new file in `folder` durable (no-op where folders cannot be opened)."""
    try:
        fd = os.open(str(folder), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: Path | str, data: bytes | str, *, mode: int = 0o644, keep_previous: str | None = None) -> Path:
    """Replace `path` with `data` atomically and durably; returns the path.

    `keep_previous`, e.g. ".prev", first keeps the current file beside it
    under that suffix (a hard link, so the old content stays whole too).
    Raises OSError (disk full, read-only, permission) with the target named.
    """
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    try:
        fd = os.open(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            view = memoryview(payload)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        if keep_previous and target.exists():
            prev = target.with_name(target.name + keep_previous)
            try:
                prev.unlink()
            except FileNotFoundError:
                pass
            os.link(target, prev)
        os.replace(tmp, target)
    except OSError as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise OSError(exc.errno, f"cannot write {target}: {exc.strerror or exc}") from exc
    fsync_dir(target.parent)
    return target

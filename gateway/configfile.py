"""Reading TOML config values with every problem reported against its key.

`Section` wraps one table of a parsed TOML document. Its typed getters return a
usable value even when the input is wrong (the default, or a neutral value) and
record a `Problem` naming the full key (`ir_beam[1].pins`), so one pass over a
config reports every problem at once instead of stopping at the first.

Drivers use the same class for their own sections, so every key in every file a
technician writes is checked the same way. Secrets are read through
`Section.secret`, which returns a `Secret` that never prints its value.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

_MISSING: Any = object()


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config: the key it concerns and what is wrong."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}" if self.key else self.message


class ConfigError(Exception):
    """Raised when a config has problems; `problems` lists every one of them."""

    def __init__(self, problems: Sequence[Problem], source: str = "") -> None:
        self.problems = list(problems)
        self.source = source
        first = str(self.problems[0]) if self.problems else "invalid config"
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(f"{source + ': ' if source else ''}{first}{more}")


@dataclass
class Problems:
    """Collects problems while a config is read."""

    items: list[Problem] = field(default_factory=list)

    def add(self, key: str, message: str) -> None:
        self.items.append(Problem(key, message))

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def raise_if_any(self, source: str = "") -> None:
        if self.items:
            raise ConfigError(self.items, source)


class Secret:
    """A secret value (password, passphrase) that never shows itself in repr or str."""

    __slots__ = ("_value", "origin")

    def __init__(self, value: str, origin: str) -> None:
        self._value = value
        self.origin = origin

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret(from {self.origin})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def load_toml(path: Path | str, key: str = "") -> tuple[dict[str, Any], Problems]:
    """Parse a TOML file; an unreadable or malformed file is one problem, not an exception."""
    problems = Problems()
    p = Path(path)
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh), problems
    except FileNotFoundError:
        problems.add(key, f"file not found: {p}")
    except PermissionError:
        problems.add(key, f"file not readable: {p}")
    except IsADirectoryError:
        problems.add(key, f"is a directory, not a file: {p}")
    except tomllib.TOMLDecodeError as exc:
        problems.add(key, f"not valid TOML in {p}: {exc}")
    except UnicodeDecodeError as exc:
        problems.add(key, f"not UTF-8 text in {p}: {exc}")
    return {}, problems


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string",
            list: "array", dict: "table"}.get(type(value), type(value).__name__)


class Section:
    """One TOML table under a known key, with typed getters that record problems.

    Call `finish()` once every key has been read: keys nobody asked for are
    reported as unknown (a typo like `debouce_ms` must not pass silently).
    """

    def __init__(self, raw: Any, key: str, problems: Problems, base_dir: Path | None = None) -> None:
        self.key = key
        self.problems = problems
        self.base_dir = base_dir
        self._seen: set[str] = set()
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            problems.add(key, f"expected a table, got {_type_name(raw)}")
            raw = {}
        self.raw: Mapping[str, Any] = raw

    # -- helpers ---------------------------------------------------------
    def child_key(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def error(self, name: str, message: str) -> None:
        """Record a problem for key `name` of this section (or the section itself if name is '')."""
        self.problems.add(self.child_key(name) if name else self.key, message)

    def has(self, name: str) -> bool:
        return name in self.raw

    def _get(self, name: str, default: Any) -> Any:
        self._seen.add(name)
        if name in self.raw:
            return self.raw[name]
        if default is _MISSING:
            self.error(name, "is required")
        return _MISSING

    # -- typed getters ---------------------------------------------------
    def str(self, name: str, default: Any = _MISSING, *, pattern: str | None = None,
            choices: Iterable[str] | None = None, nonempty: bool = True) -> str:
        value = self._get(name, default)
        if value is _MISSING:
            return default if default is not _MISSING else ""
        if not isinstance(value, str):
            self.error(name, f"expected a string, got {_type_name(value)}")
            return default if default is not _MISSING else ""
        if nonempty and not value:
            self.error(name, "must not be empty")
        if choices is not None:
            allowed = list(choices)
            if value not in allowed:
                self.error(name, f"must be one of {', '.join(map(repr, allowed))}, got {value!r}")
        if pattern is not None and not re.fullmatch(pattern, value):
            self.error(name, f"{value!r} does not match {pattern}")
        return value

    def int(self, name: str, default: Any = _MISSING, *, min: int | None = None,
            max: int | None = None) -> int:
        value = self._get(name, default)
        if value is _MISSING:
            return default if default is not _MISSING else 0
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(name, f"expected an integer, got {_type_name(value)}")
            return default if default is not _MISSING else 0
        self._check_range(name, value, min, max)
        return value

    def float(self, name: str, default: Any = _MISSING, *, min: float | None = None,
              max: float | None = None) -> float:
        value = self._get(name, default)
        if value is _MISSING:
            return float(default) if default is not _MISSING else 0.0
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.error(name, f"expected a number, got {_type_name(value)}")
            return float(default) if default is not _MISSING else 0.0
        self._check_range(name, value, min, max)
        return float(value)

    def bool(self, name: str, default: Any = _MISSING) -> bool:
        value = self._get(name, default)
        if value is _MISSING:
            return bool(default) if default is not _MISSING else False
        if not isinstance(value, bool):
            self.error(name, f"expected true or false, got {_type_name(value)}")
            return bool(default) if default is not _MISSING else False
        return value

    def list(self, name: str, default: Any = _MISSING, *, item_type: type | tuple[type, ...] | None = None,
             min_len: int = 0, max_len: int | None = None) -> list[Any]:
        value = self._get(name, default)
        if value is _MISSING:
            return list(default) if default is not _MISSING else []
        if not isinstance(value, list):
            self.error(name, f"expected an array, got {_type_name(value)}")
            return list(default) if default is not _MISSING else []
        if len(value) < min_len:
            self.error(name, f"needs at least {min_len} item(s), got {len(value)}")
        if max_len is not None and len(value) > max_len:
            self.error(name, f"takes at most {max_len} item(s), got {len(value)}")
        if item_type is not None:
            for i, item in enumerate(value):
                bad = isinstance(item, bool) and item_type is not bool and (
                    item_type is int or (isinstance(item_type, tuple) and bool not in item_type))
                if bad or not isinstance(item, item_type):
                    self.problems.add(f"{self.child_key(name)}[{i}]",
                                      f"unexpected {_type_name(item)}")
        return value

    def path(self, name: str, default: Any = _MISSING, *, must_exist: bool = False) -> Path:
        """A filesystem path; relative paths are taken from the config file's folder."""
        text = self.str(name, default if default is _MISSING else str(default))
        p = Path(text)
        if self.base_dir is not None and not p.is_absolute():
            p = self.base_dir / p
        if must_exist and text and not p.exists():
            self.error(name, f"file not found: {p}")
        return p

    def section(self, name: str, *, required: bool = False) -> "Section":
        value = self._get(name, _MISSING if required else None)
        return Section(None if value is _MISSING else value, self.child_key(name), self.problems, self.base_dir)

    def sections(self, name: str, *, required: bool = False) -> list["Section"]:
        """An array of tables (`[[name]]`), each as a Section keyed `name[i]`."""
        value = self._get(name, _MISSING if required else None)
        if value is _MISSING or value is None:
            return []
        if not isinstance(value, list):
            self.error(name, f"expected an array of tables ([[{name}]]), got {_type_name(value)}")
            return []
        return [Section(item, f"{self.child_key(name)}[{i}]", self.problems, self.base_dir)
                for i, item in enumerate(value)]

    def secret(self, name: str, *, required: bool = False) -> Secret | None:
        """A secret given as `{name}_file` (a file only its owner can read) or `{name}_env`.

        A literal `{name}` in the config is refused: secrets do not belong in a
        file that gets copied around and pasted into tickets.
        """
        self._seen.update({name, f"{name}_file", f"{name}_env"})
        if name in self.raw:
            self.error(name, f"put secrets in a file ({name}_file) or an environment variable ({name}_env), not in the config")
            return None
        if f"{name}_file" in self.raw:
            return read_secret_file(self.raw[f"{name}_file"], self.child_key(f"{name}_file"),
                                    self.problems, self.base_dir)
        if f"{name}_env" in self.raw:
            var = self.raw[f"{name}_env"]
            key = self.child_key(f"{name}_env")
            if not isinstance(var, str) or not var:
                self.problems.add(key, "expected the name of an environment variable")
                return None
            if var not in os.environ:
                self.problems.add(key, f"environment variable {var} is not set")
                return None
            return Secret(os.environ[var], f"${var}")
        if required:
            self.error(f"{name}_file", "is required")
        return None

    def _check_range(self, name: str, value: float, lo: float | None, hi: float | None) -> None:
        if lo is not None and value < lo:
            self.error(name, f"must be at least {lo}, got {value}")
        if hi is not None and value > hi:
            self.error(name, f"must be at most {hi}, got {value}")

    def renamed(self, old: str, new: str) -> None:
        """Refuse a key's old spelling with a line naming the new one (`baudrate` -> `baud`).

        One spelling per idea keeps configs guessable; an old spelling is an
        error rather than an alias, so two spellings never live side by side.
        """
        self._seen.add(old)
        if old in self.raw:
            self.error(old, f"renamed: use {new!r} instead")

    def mark_seen(self, *names: str) -> None:
        """Declare keys as known without reading them through a getter."""
        self._seen.update(names)

    def finish(self) -> None:
        """Report keys of this table that no getter asked for."""
        for name in self.raw:
            if name not in self._seen:
                self.error(name, "unknown key")


def parse_named(sections: Iterable["Section"], parse: Callable[["Section"], Any],
                duplicate: Callable[[str], str]) -> list[Any]:
    """Parse each table with `parse` (None: it had problems, skipped) and refuse a `name`
    used twice, with the line `duplicate(name)` on the later table's `name` key."""
    out: list[Any] = []
    seen: set[str] = set()
    for sec in sections:
        item = parse(sec)
        if item is None:
            continue
        if item.name in seen:
            sec.error("name", duplicate(item.name))
        seen.add(item.name)
        out.append(item)
    return out


def read_secret_file(value: Any, key: str, problems: Problems, base_dir: Path | None = None) -> Secret | None:
    """Read a secret from a file, refusing one that others than its owner may read."""
    if not isinstance(value, str) or not value:
        problems.add(key, "expected a file path")
        return None
    p = Path(value)
    if base_dir is not None and not p.is_absolute():
        p = base_dir / p
    try:
        mode = p.stat().st_mode
    except OSError as exc:
        problems.add(key, f"cannot read secret file {p}: {exc.strerror}")
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        problems.add(key, f"secret file {p} is readable by others (mode {stat.S_IMODE(mode):o}); chmod 600 it")
        return None
    try:
        text = p.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        problems.add(key, f"cannot read secret file {p}: {exc}")
        return None
    return Secret(text, str(p))

"""The pre-event buffer: the last seconds of a camera, so that a clip can start before the throw.

A throw is judged only once the object has landed, seconds after the
release, and the clip must begin `pre_s` before the release: the camera's
recent past has to be held in memory all the time. Decoded pictures are
far too big for that (10 s of 1080p RGB at 25 fps is 1.5 GB), so:

- `PacketRing` keeps the stream's own encoded packets (RTSP, files, V4L2
  cameras that send H.264/MJPEG), whole GOPs, always from a keyframe, so the
  clip can be remuxed from them: a few MB for 10 s of 1080p.
- `FrameRing` is for sources without packets (npz clips, synthetic feeds,
  raw frames): pictures downscaled by a whole factor chosen so the full
  span fits the byte budget, and past that budget the oldest go.

Both are bounded in bytes (`max_bytes`) and in time (`seconds`), whichever
is smaller, and say how much they hold (`span`, `nbytes`) for health and
telemetry. `Recording` is one clip in the making: the ring's past plus the
live frames or packets until its end.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from detection.sources import EncodedPacket, StreamInfo

MAX_DOWNSCALE = 4   # a picture shrunk more than this each way no longer shows a window


class PacketRing:
    """Encoded packets of the last `seconds` (from the keyframe before them), never more than `max_bytes`."""

    def __init__(self, seconds: float, max_bytes: int) -> None:
        self.seconds = seconds
        self.max_bytes = max_bytes
        self._gops: deque[list[EncodedPacket]] = deque()   # each starts with a keyframe
        self.nbytes = 0
        self.dropped_for_memory = 0   # GOPs let go to stay under max_bytes while still in the span

    def push(self, packet: EncodedPacket) -> None:
        if packet.keyframe:
            self._gops.append([packet])
        elif self._gops:
            self._gops[-1].append(packet)
        else:
            return   # a stream joined mid-GOP: nothing decodes before the first keyframe
        self.nbytes += packet.nbytes
        newest = packet.dts
        while len(self._gops) > 1 and self._gops[1][0].t <= newest - self.seconds:
            self._drop_oldest()
        while self.nbytes > self.max_bytes and self._gops:
            self._drop_oldest()
            self.dropped_for_memory += 1

    def _drop_oldest(self) -> None:
        gop = self._gops.popleft()
        self.nbytes -= sum(p.nbytes for p in gop)

    def since(self, t_from: float) -> list[EncodedPacket]:
        """Packets in decoding order from the last keyframe at or before `t_from` (or the oldest held)."""
        start = 0
        for i, gop in enumerate(self._gops):
            if gop[0].t <= t_from:
                start = i
        return [p for gop in list(self._gops)[start:] for p in gop]

    @property
    def span(self) -> float:
        """Seconds of video held now."""
        if not self._gops:
            return 0.0
        last = self._gops[-1][-1]
        return last.dts + last.duration - self._gops[0][0].t

    def __len__(self) -> int:
        return sum(len(g) for g in self._gops)

    def clear(self) -> None:
        self._gops.clear()
        self.nbytes = 0


class FrameRing:
    """The last `seconds` of pictures, downscaled to fit `max_bytes` at `fps` (oldest dropped past it)."""

    def __init__(self, seconds: float, max_bytes: int, fps: float = 25.0) -> None:
        self.seconds = seconds
        self.max_bytes = max_bytes
        self.fps = fps
        self.scale = 1                # pictures are kept every `scale`-th pixel each way
        self._shape: tuple[int, ...] | None = None
        self._frames: deque[tuple[float, np.ndarray]] = deque()
        self.nbytes = 0
        self.dropped_for_memory = 0

    def _plan(self, frame: np.ndarray) -> None:
        """The smallest whole downscale at which the whole span fits the budget (at most MAX_DOWNSCALE)."""
        per_span = frame.nbytes * max(1.0, self.seconds * self.fps)
        self.scale = min(MAX_DOWNSCALE, max(1, math.ceil(math.sqrt(per_span / max(1, self.max_bytes)))))
        self._shape = frame.shape

    def push(self, t: float, frame: np.ndarray) -> np.ndarray:
        """Keep a picture (at the ring's scale); returns what was kept, for clips being recorded."""
        if frame.shape != self._shape:
            self._plan(frame)
        kept = frame if self.scale == 1 else np.ascontiguousarray(frame[::self.scale, ::self.scale])
        self._frames.append((t, kept))
        self.nbytes += kept.nbytes
        while self._frames and (t - self._frames[0][0] > self.seconds or self.nbytes > self.max_bytes):
            old_t, old = self._frames.popleft()
            self.nbytes -= old.nbytes
            if t - old_t <= self.seconds:
                self.dropped_for_memory += 1
        return kept

    def since(self, t_from: float) -> list[tuple[float, np.ndarray]]:
        return [(t, f) for t, f in self._frames if t >= t_from]

    def nearest(self, t: float) -> tuple[float, np.ndarray] | None:
        if not self._frames:
            return None
        return min(self._frames, key=lambda tf: abs(tf[0] - t))

    @property
    def span(self) -> float:
        """Seconds of video held now."""
        return self._frames[-1][0] - self._frames[0][0] if len(self._frames) > 1 else 0.0

    def __len__(self) -> int:
        return len(self._frames)

    def clear(self) -> None:
        self._frames.clear()
        self.nbytes = 0


@dataclass
class Recording:
    """One clip in the making, from `t_from` (before the event) to `t_until` (after it).

    It holds either pictures (`frames`) or the stream's packets (`packets`,
    with `stream` to remux them), never both.
    """

    event_id: str
    t_from: float
    t_until: float
    stem: Path                        # file path without suffix
    frames: list[tuple[float, np.ndarray]] = field(default_factory=list)
    packets: list[EncodedPacket] = field(default_factory=list)
    stream: StreamInfo | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def extend(self, frames: Iterable[tuple[float, np.ndarray]]) -> None:
        for t, f in frames:
            if self.t_from <= t <= self.t_until:
                self.frames.append((t, f))

    def add(self, t: float, frame: np.ndarray) -> bool:
        """Take a live picture; True once the recording has everything it needs."""
        if t > self.t_until:
            return True
        if t >= self.t_from and (not self.frames or t > self.frames[-1][0]):
            self.frames.append((t, frame))
        return False

    def add_packet(self, packet: EncodedPacket) -> bool:
        """Take a live packet; True once the recording has everything it needs.

        Past `t_until` (in decoding order) the packets that fill gaps before
        the latest picture (B-frames) are still taken, so the clip ends on a
        whole run of pictures.
        """
        shown = max((p.t for p in self.packets[-8:]), default=float("-inf"))
        if packet.dts > self.t_until and packet.t > shown:
            return True
        if not self.packets or packet.dts > self.packets[-1].dts:
            self.packets.append(packet)
        return False

    @property
    def start(self) -> float | None:
        """Where the clip really starts on the source's timeline (a keyframe at or before `t_from`)."""
        if self.packets:
            return self.packets[0].t
        return self.frames[0][0] if self.frames else None

    @property
    def count(self) -> int:
        """Pictures in the clip."""
        return len(self.packets) if self.packets else len(self.frames)

    def release(self) -> None:
        self.frames = []
        self.packets = []

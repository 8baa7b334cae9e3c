"""Frame sources: one narrow interface in front of every way of getting camera frames.

    source = open_source(config, resources)   # or NpzSource(path), SyntheticSource(spec), ...
    source.open()
    frame = source.read()     # Frame(t, gray, color) | None (nothing yet); EndOfSource at the end
    source.close()

`t` is seconds since the source's first frame (media time for files, the
capture clock for live cameras). `gray` is the uint8 H x W plane the detector
analyses; `color` (H' x W' x 3 RGB, optional) is the picture kept as evidence.
A source hands out a fresh array per frame: consumers may keep it.

A source that can hand over the camera's own encoded bits also sets
`Frame.packets` (the packets demuxed since the previous frame) and
`stream_info`: the pre-event buffer then keeps those packets, a few MB for
10 s of 1080p, instead of decoded pictures (hundreds of MB), and the clip is
remuxed from them, bit for bit what the camera sent.

Implementations:
- `NpzSource`: an `.npz` clip with `frames` (N x H x W uint8) and `fps`, paced
  in real time or read as fast as possible.
- `SyntheticSource`: frames of a feed handed in by whoever builds it (the
  simulated cameras of `anfang sim`, through `resources["camera_feeds"]`):
  this package renders nothing itself.
- `VideoSource`: a file, a V4L2 device or an RTSP URL through PyAV (the
  `video` extra; `av` is imported only when such a source opens); encoded
  packets and decoded frames.
- `PiCameraSource`: picamera2 on a Raspberry Pi (imported only when
  configured): the low-res stream's Y plane for analysis, the main stream
  H.264-encoded into a `CircularOutput2` that records the evidence clip itself.
"""

from __future__ import annotations

import abc
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol

import numpy as np

from gateway.configfile import Secret, Section

SOURCE_TYPES = ("npz", "synthetic", "video", "v4l2", "rtsp", "picamera2")
FEEDS_KEY = "camera_feeds"     # resources[FEEDS_KEY][name]: the feeds `anfang sim` hands in


class SourceError(Exception):
    """The source failed (cannot open, stream broke, read timed out); it may work when reopened."""


class EndOfSource(Exception):
    """A finite source (a file, a clip) has no more frames."""


@dataclass(frozen=True, slots=True)
class EncodedPacket:
    """One compressed packet of the camera's stream, timed on the source's timeline."""

    t: float                          # presentation time, seconds (as `Frame.t`)
    dts: float                        # decoding time, seconds (before `t` for B-frame streams)
    duration: float                   # seconds
    keyframe: bool
    data: bytes                       # Annex B for H.264/H.265: SPS/PPS travel with each keyframe

    @property
    def nbytes(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class StreamInfo:
    """What it takes to remux or decode a source's packets without the source."""

    codec: str                        # FFmpeg codec name, e.g. "h264"
    width: int
    height: int
    fps: float


@dataclass
class Frame:
    t: float                          # seconds since the source's first frame
    gray: np.ndarray                  # uint8 H x W, analysed
    color: np.ndarray | None = None   # uint8 H x W x 3 RGB, kept as evidence when present
    packets: tuple[EncodedPacket, ...] = ()   # encoded packets demuxed since the previous frame


class NativeClipRecorder(Protocol):
    """A source that records evidence clips itself (e.g. a hardware H.264 circular buffer)."""

    def start_clip(self, path: Path) -> None: ...
    def stop_clip(self) -> None: ...


class FrameSource(abc.ABC):
    """A camera, a file or a scene that yields frames."""

    fps: float = 25.0
    description: str = ""

    @abc.abstractmethod
    def open(self) -> None:
        """Open the device or file; raises SourceError if it cannot."""

    @abc.abstractmethod
    def read(self) -> Frame | None:
        """The next frame; None if a live source has nothing yet (call again).

        Raises EndOfSource when a finite source is exhausted, SourceError on failure.
        """

    def close(self) -> None:
        """Release the device; safe to call twice."""

    @property
    def native_clips(self) -> NativeClipRecorder | None:
        """The source's own clip recorder, if it records evidence itself."""
        return None

    @property
    def stream_info(self) -> StreamInfo | None:
        """Set when frames carry the stream's encoded packets (see `Frame.packets`)."""
        return None

    def __enter__(self) -> "FrameSource":
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        while True:
            try:
                frame = self.read()
            except EndOfSource:
                return
            if frame is not None:
                yield frame


class _Pacer:
    """Holds frame i back until i / fps seconds after the first frame (real-time playback)."""

    def __init__(self, fps: float, realtime: bool) -> None:
        self.period = 1.0 / fps if fps > 0 else 0.0
        self.realtime = realtime
        self._t0: float | None = None

    def wait(self, t: float) -> None:
        if not self.realtime:
            return
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now - t
            return
        delay = self._t0 + t - now
        if delay > 0:
            time.sleep(delay)   # pacing a playback, not synchronisation
        elif delay < -1.0:      # fell far behind (a stall): resynchronise instead of racing
            self._t0 = now - t


def as_gray(frame: np.ndarray) -> np.ndarray:
    """A uint8 H x W plane from a gray or RGB frame (ITU-R BT.601 luma)."""
    if frame.ndim == 2:
        return np.ascontiguousarray(frame, dtype=np.uint8)
    rgb = frame[..., :3].astype(np.uint16)
    y = (77 * rgb[..., 0] + 150 * rgb[..., 1] + 29 * rgb[..., 2] + 128) >> 8
    return y.astype(np.uint8)


class NpzSource(FrameSource):
    """An `.npz` clip: `frames` (N x H x W uint8, or N x H x W x 3 RGB) and `fps`."""

    def __init__(self, path: Path | str, *, realtime: bool = False, loop: bool = False,
                 fps: float | None = None) -> None:
        self.path = Path(path)
        self.realtime = realtime
        self.loop = loop
        self._fps_override = fps
        self.description = f"npz {self.path.name}"
        self._frames: np.ndarray | None = None
        self._i = 0
        self._lap = 0
        self._pacer: _Pacer | None = None

    def open(self) -> None:
        self._frames, self.fps = load_npz_clip(self.path)
        if self._fps_override:
            self.fps = self._fps_override
        self._i = 0
        self._lap = 0
        self._pacer = _Pacer(self.fps, self.realtime)

    def read(self) -> Frame | None:
        if self._frames is None or self._pacer is None:
            raise SourceError("source is not open")
        n = len(self._frames)
        if self._i >= n:
            if not self.loop or n == 0:
                raise EndOfSource(str(self.path))
            self._i = 0
            self._lap += 1
        t = (self._lap * n + self._i) / self.fps
        raw = self._frames[self._i]
        self._i += 1
        self._pacer.wait(t)
        if raw.ndim == 3:
            return Frame(t, as_gray(raw), np.array(raw[..., :3], dtype=np.uint8))
        return Frame(t, np.array(raw, dtype=np.uint8))

    def close(self) -> None:
        self._frames = None


def load_npz_clip(path: Path | str) -> tuple[np.ndarray, float]:
    """Read a contract clip; raises SourceError naming what is wrong."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as data:
            if "frames" not in data.files:
                raise SourceError(f"{p}: no 'frames' array (has: {', '.join(data.files) or 'nothing'})")
            frames = data["frames"]
            fps = float(data["fps"]) if "fps" in data.files else 0.0
    except SourceError:
        raise
    except (OSError, ValueError) as exc:   # missing, not a zip, pickled objects
        raise SourceError(f"{p}: cannot read clip: {exc}") from exc
    if frames.ndim not in (3, 4) or frames.dtype != np.uint8:
        raise SourceError(f"{p}: 'frames' must be N x H x W uint8, got {frames.shape} {frames.dtype}")
    if not fps > 0:
        raise SourceError(f"{p}: 'fps' must be a positive number")
    return frames, fps


class LiveFeed(Protocol):
    """A producer of frames handed to `SyntheticSource`: a frame rate and an iterator factory."""

    fps: float

    def frames(self) -> Iterator[tuple[float, np.ndarray]]:
        """A fresh iterator of (t, uint8 frame), t in seconds from its first frame."""


class SyntheticSource(FrameSource):
    """Frames of a feed someone else renders (a simulated camera); looped if asked."""

    def __init__(self, feed: LiveFeed, *, realtime: bool = False, loop: bool = False) -> None:
        self.feed = feed
        self.realtime = realtime
        self.loop = loop
        self.fps = float(feed.fps)
        self.description = "synthetic feed"
        self._it: Iterator[tuple[float, np.ndarray]] | None = None
        self._pacer: _Pacer | None = None
        self._offset = 0.0
        self._last_t = 0.0

    def open(self) -> None:
        self._it = self.feed.frames()
        self._pacer = _Pacer(self.fps, self.realtime)
        self._offset = 0.0
        self._last_t = 0.0

    def read(self) -> Frame | None:
        if self._it is None or self._pacer is None:
            raise SourceError("source is not open")
        try:
            t, frame = next(self._it)
        except StopIteration:
            if not self.loop:
                raise EndOfSource("synthetic feed ended") from None
            self._offset = self._last_t + 1.0 / self.fps
            self._it = self.feed.frames()
            try:
                t, frame = next(self._it)
            except StopIteration:
                raise EndOfSource("synthetic feed is empty") from None
        t = float(t) + self._offset
        self._last_t = t
        self._pacer.wait(t)
        return Frame(t, np.array(frame, dtype=np.uint8, copy=True))

    def close(self) -> None:
        self._it = None


@dataclass
class VideoOptions:
    """How PyAV opens a file, a V4L2 device or an RTSP stream."""

    url: str
    format: str | None = None                      # "v4l2" for a device; None: guessed
    options: dict[str, str] = field(default_factory=dict)
    open_timeout_s: float = 10.0
    read_timeout_s: float = 5.0
    realtime: bool = False                         # pace a file like a camera
    loop: bool = False
    analysis_width: int = 0                        # 0: native
    color: bool = True                             # evidence pictures in colour
    evidence_width: int = 960                      # a decoded evidence picture's width at most
    live: bool = False                             # a device or a stream (no end)
    packets: bool = True                           # hand out the encoded packets (no colour frames then)


# Bitstream filters that make packets self-contained (parameter sets in band), so
# a clip can be remuxed from them long after the source that sent them is gone.
_SELF_CONTAINED = {"h264": "h264_mp4toannexb", "hevc": "hevc_mp4toannexb"}


class VideoSource(FrameSource):
    """A video file, V4L2 device or RTSP stream through PyAV (the `video` extra).

    With `packets` (the default) every frame carries the encoded packets
    demuxed since the previous frame; a stream whose codec cannot be remuxed
    (raw V4L2 YUV, say) hands out colour frames instead.
    """

    def __init__(self, opts: VideoOptions, *, secret_url: Callable[[], str] | None = None) -> None:
        self.opts = opts
        self._secret_url = secret_url
        self.description = f"video {opts.url}"
        self._container: Any = None
        self._stream: Any = None
        self._demux: Iterator[Any] | None = None
        self._bsf: Any = None
        self._info: StreamInfo | None = None
        self._pending: list[Any] = []      # decoded frames not yet handed out
        self._packets: list[EncodedPacket] = []
        self._flushed = False
        self._pacer: _Pacer | None = None
        self._t0: float | None = None
        self._n = 0
        self._offset = 0.0                 # time already played by earlier loops of a file
        self._last_t: float | None = None

    @property
    def stream_info(self) -> StreamInfo | None:
        return self._info

    def open(self) -> None:
        try:
            import av   # the `video` extra
        except ImportError as exc:
            raise SourceError("PyAV is not installed: pip install 'anfang-gateway[video]'") from exc
        url = self._secret_url() if self._secret_url else self.opts.url
        started = time.monotonic()
        try:
            self._container = av.open(url, format=self.opts.format, options=dict(self.opts.options),
                                      timeout=(self.opts.open_timeout_s, self.opts.read_timeout_s))
            stream = self._container.streams.video[0]
        except (av.FFmpegError, IndexError, OSError) as exc:
            self.close()
            why = _redact(str(exc), url, self.opts.url)
            if time.monotonic() - started >= self.opts.open_timeout_s:   # FFmpeg names the symptom, not the cause
                why = f"no answer within open_timeout_s = {self.opts.open_timeout_s:g} s ({why})"
            raise SourceError(f"cannot open {self.opts.url}: {why}") from exc
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate or 25
        self.fps = float(rate)
        self._stream = stream
        self._info = self._packet_info(stream) if self.opts.packets else None
        self._demux = self._container.demux(stream)
        self._pending = []
        self._packets = []
        self._flushed = False
        self._pacer = _Pacer(self.fps, self.opts.realtime and not self.opts.live)
        self._t0 = None
        self._n = 0
        self._offset = 0.0
        self._last_t = None

    def _packet_info(self, stream: Any) -> StreamInfo | None:
        """The stream's remux description, with a filter making its packets self-contained; None if it cannot be."""
        cc = stream.codec_context
        if cc.name in ("rawvideo", "") or not cc.width:
            return None
        if cc.name in _SELF_CONTAINED and (cc.extradata or b"")[:1] == b"\x01":   # avcC / hvcC: out of band
            from av.bitstream import BitStreamFilterContext
            self._bsf = BitStreamFilterContext(_SELF_CONTAINED[cc.name], stream)
        elif cc.extradata and cc.name not in _SELF_CONTAINED:
            from av.bitstream import BitStreamFilterContext
            self._bsf = BitStreamFilterContext("dump_extra=freq=keyframe", stream)
        else:
            self._bsf = None
        return StreamInfo(cc.name, int(cc.width), int(cc.height), self.fps)

    def read(self) -> Frame | None:
        if self._demux is None or self._pacer is None:
            raise SourceError("source is not open")
        import av
        try:
            while not self._pending:
                if self._flushed:
                    return self._ended()
                try:
                    packet = next(self._demux)
                except StopIteration:
                    packet = None
                if packet is None or packet.size == 0:   # the end (PyAV's demuxer ends with an empty packet)
                    self._pending.extend(self._stream.decode(None))
                    self._flushed = True
                    continue
                self._pending.extend(self._stream.decode(packet))
                if self._info is not None:   # after decoding: the filter takes the packet's data over
                    self._keep(packet)
        except (av.FFmpegError, OSError) as exc:
            raise SourceError(f"{self.opts.url}: {exc}") from exc
        vf = self._pending.pop(0)
        if vf.pts is not None and vf.time_base is not None:
            t_media = float(vf.pts * vf.time_base)
        else:
            t_media = self._n / self.fps
        if self._t0 is None:
            self._t0 = t_media
        t = t_media - self._t0
        self._last_t = t
        t += self._offset
        self._n += 1
        self._pacer.wait(t)
        gray_w = self.opts.analysis_width if 0 < self.opts.analysis_width < vf.width else vf.width
        gray = vf.reformat(width=gray_w, height=_scaled_height(vf, gray_w), format="gray").to_ndarray()
        color = None
        if self.opts.color and self._info is None:
            cw = self.opts.evidence_width if 0 < self.opts.evidence_width < vf.width else vf.width
            color = vf.reformat(width=cw, height=_scaled_height(vf, cw), format="rgb24").to_ndarray()
        packets, self._packets = tuple(self._packets), []
        return Frame(t, np.ascontiguousarray(gray), color, packets)

    def _keep(self, packet: Any) -> None:
        """Record a demuxed packet (filtered to stand alone) on the frames' timeline."""
        filtered = self._bsf.filter(packet) if self._bsf is not None else [packet]
        for p in filtered:
            if p.size == 0 or p.time_base is None:
                continue
            tb = float(p.time_base)
            pts = p.pts if p.pts is not None else p.dts
            if pts is None:
                continue
            t = pts * tb
            if self._t0 is None:
                self._t0 = t
            base = self._offset - self._t0
            dts = (p.dts if p.dts is not None else pts) * tb
            duration = p.duration * tb if p.duration else 1.0 / self.fps
            self._packets.append(EncodedPacket(t + base, dts + base, duration, bool(p.is_keyframe), bytes(p)))

    def _ended(self) -> Frame | None:
        if self.opts.live:
            raise SourceError(f"{self.opts.url}: stream ended")
        if self.opts.loop:
            offset = self._offset + (self._last_t or 0.0) + 1.0 / self.fps
            self.close()
            self.open()
            self._offset = offset
            return None
        raise EndOfSource(self.opts.url)

    def close(self) -> None:
        self._demux = None
        self._stream = None
        self._bsf = None
        self._pending = []
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # closing a broken stream must not mask the original fault
                pass
            self._container = None


def _scaled_height(vf: Any, width: int) -> int:
    if width == vf.width:
        return int(vf.height)
    return max(2, int(round(vf.height * width / vf.width / 2)) * 2)


def _redact(text: str, url: str, shown: str) -> str:
    return text.replace(url, shown) if url != shown else text


class PiCameraSource(FrameSource):
    """picamera2 on a Raspberry Pi: lores Y plane analysed, main stream H.264 into a circular buffer.

    Only this class imports picamera2, and only in `open()`. It cannot run off a
    Pi; it is kept small so what it does can be read at a glance.
    """

    def __init__(self, *, camera: int = 0, main_size: tuple[int, int] = (1280, 720),
                 lores_size: tuple[int, int] = (640, 360), fps: float = 25.0,
                 bitrate: int = 4_000_000, buffer_s: float = 3.0) -> None:
        self.camera = camera
        self.main_size = main_size
        self.lores_size = lores_size
        self.fps = fps
        self.bitrate = bitrate
        self.buffer_s = buffer_s
        self.description = f"picamera2 camera {camera}"
        self._picam2: Any = None
        self._circular: Any = None
        self._encoder: Any = None
        self._t0: float | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
            from picamera2.encoders import H264Encoder
            from picamera2.outputs import CircularOutput2
        except ImportError as exc:
            raise SourceError("picamera2 is not installed (apt install python3-picamera2)") from exc
        try:
            picam2 = Picamera2(self.camera)
            config = picam2.create_video_configuration(
                main={"size": self.main_size, "format": "YUV420"},
                lores={"size": self.lores_size, "format": "YUV420"},
                controls={"FrameRate": self.fps})
            picam2.configure(config)
            self._encoder = H264Encoder(bitrate=self.bitrate, repeat=True)
            self._circular = CircularOutput2(buffer_duration_ms=int(self.buffer_s * 1000))
            picam2.start_recording(self._encoder, self._circular)
        except Exception as exc:   # libcamera raises many kinds; all mean "no camera"
            raise SourceError(f"cannot start camera {self.camera}: {exc}") from exc
        self._picam2 = picam2
        self._t0 = None

    def read(self) -> Frame | None:
        if self._picam2 is None:
            raise SourceError("source is not open")
        try:
            yuv = self._picam2.capture_array("lores")
        except Exception as exc:
            raise SourceError(f"camera {self.camera}: {exc}") from exc
        w, h = self.lores_size
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        return Frame(now - self._t0, np.array(yuv[:h, :w], dtype=np.uint8))

    @property
    def native_clips(self) -> NativeClipRecorder | None:
        return self if self._picam2 is not None else None

    def start_clip(self, path: Path) -> None:
        from picamera2.outputs import PyavOutput
        with self._lock:
            self._circular.open_output(PyavOutput(str(path)))

    def stop_clip(self) -> None:
        with self._lock:
            self._circular.close_output()

    def close(self) -> None:
        if self._picam2 is not None:
            try:
                self._picam2.stop_recording()
                self._picam2.close()
            except Exception:
                pass
            self._picam2 = None


# -- configuration -------------------------------------------------------------

@dataclass
class SourceConfig:
    """A validated `source = {type = ..., ...}` table."""

    type: str
    params: dict[str, Any] = field(default_factory=dict)
    secret: Secret | None = None        # RTSP password

    def describe(self) -> str:
        p = self.params
        return {"npz": f"npz {p.get('path')}", "synthetic": f"synthetic feed {p.get('feed')}",
                "video": f"video file {p.get('path')}", "v4l2": f"V4L2 {p.get('device')}",
                "rtsp": f"RTSP {p.get('url')}", "picamera2": f"picamera2 {p.get('camera')}"}[self.type]


def parse_source(sec: Section) -> SourceConfig:
    """Validate a source table; every problem is recorded against its key."""
    kind = sec.str("type", choices=SOURCE_TYPES)
    p: dict[str, Any] = {}
    secret = None
    if kind in ("npz", "video"):
        p["path"] = sec.path("path", must_exist=True)
        p["realtime"] = sec.bool("realtime", True)
        p["loop"] = sec.bool("loop", False)
    if kind == "synthetic":
        p["feed"] = sec.str("feed")
        p["realtime"] = sec.bool("realtime", True)
        p["loop"] = sec.bool("loop", False)
    if kind == "v4l2":
        p["device"] = sec.str("device", "/dev/video0")
        p["width"] = sec.int("width", 0, min=0)
        p["height"] = sec.int("height", 0, min=0)
        p["fps"] = sec.float("fps", 0.0, min=0)
        p["input_format"] = sec.str("input_format", "", nonempty=False)
    if kind == "rtsp":
        p["url"] = sec.str("url", pattern=r"rtsps?://[^\s@]+")
        p["username"] = sec.str("username", "", nonempty=False)
        secret = sec.secret("password")
        p["transport"] = sec.str("transport", "tcp", choices=("tcp", "udp"))
    if kind in ("video", "v4l2", "rtsp"):
        d = VideoOptions(url="")
        p["analysis_width"] = sec.int("analysis_width", d.analysis_width, min=0)
        p["color"] = sec.bool("color", d.color)
        p["evidence_width"] = sec.int("evidence_width", d.evidence_width, min=0)
        p["open_timeout_s"] = sec.float("open_timeout_s", d.open_timeout_s, min=0.5)
        p["read_timeout_s"] = sec.float("read_timeout_s", d.read_timeout_s, min=0.5)
        p["packets"] = sec.bool("packets", d.packets)
        sec.renamed("open_timeout", "open_timeout_s")
        sec.renamed("read_timeout", "read_timeout_s")
    if kind == "picamera2":
        p["camera"] = sec.int("camera", 0, min=0)
        p["main_size"] = tuple(_size(sec, "main_size", [1280, 720]))
        p["lores_size"] = tuple(_size(sec, "lores_size", [640, 360]))
        p["fps"] = sec.float("fps", 25.0, min=1, max=120)
        p["bitrate"] = sec.int("bitrate", 4_000_000, min=100_000)
    sec.finish()
    return SourceConfig(kind, p, secret)


def _size(sec: Section, name: str, default: list[int]) -> list[int]:
    value = sec.list(name, default, item_type=int, min_len=2, max_len=2)
    if len(value) != 2 or any(not isinstance(v, int) or v < 16 for v in value):
        sec.error(name, "expected [width, height] in pixels")
        return default
    return value


def open_source(cfg: SourceConfig, resources: Mapping[str, Any] | None = None,
                *, buffer_s: float = 3.0) -> FrameSource:
    """Build the source a config names (not yet opened). Raises SourceError if it cannot exist here."""
    p = cfg.params
    if cfg.type == "npz":
        return NpzSource(p["path"], realtime=p["realtime"], loop=p["loop"])
    if cfg.type == "synthetic":
        feeds = (resources or {}).get(FEEDS_KEY, {})
        if p["feed"] not in feeds:
            raise SourceError(f"no simulated camera feed named {p['feed']!r} (synthetic sources run under `anfang sim`)")
        return SyntheticSource(feeds[p["feed"]], realtime=p["realtime"], loop=p["loop"])
    if cfg.type == "video":
        return VideoSource(VideoOptions(
            url=str(p["path"]), realtime=p["realtime"], loop=p["loop"], **_video_common(p)))
    if cfg.type == "v4l2":
        opts: dict[str, str] = {}
        if p["width"] and p["height"]:
            opts["video_size"] = f"{p['width']}x{p['height']}"
        if p["fps"]:
            opts["framerate"] = f"{p['fps']:g}"
        if p["input_format"]:
            opts["input_format"] = p["input_format"]
        return VideoSource(VideoOptions(url=p["device"], format="v4l2", options=opts, live=True,
                                        **_video_common(p)))
    if cfg.type == "rtsp":
        url, user, secret = p["url"], p["username"], cfg.secret

        def full_url() -> str:
            if not user:
                return url
            from urllib.parse import quote
            scheme, rest = url.split("://", 1)
            cred = quote(user, safe="") + (":" + quote(secret.reveal(), safe="") if secret else "")
            return f"{scheme}://{cred}@{rest}"

        return VideoSource(VideoOptions(url=url, options={"rtsp_transport": p["transport"]}, live=True,
                                        **_video_common(p)), secret_url=full_url)
    if cfg.type == "picamera2":
        return PiCameraSource(camera=p["camera"], main_size=p["main_size"], lores_size=p["lores_size"],
                              fps=p["fps"], bitrate=p["bitrate"], buffer_s=buffer_s)
    raise SourceError(f"unknown source type {cfg.type!r}")


def _video_common(p: Mapping[str, Any]) -> dict[str, Any]:
    return {k: p[k] for k in ("analysis_width", "color", "evidence_width", "open_timeout_s", "read_timeout_s",
                              "packets")}

"""Stitching: one fall seen as two tracks (a gap in the middle) is judged as one.

An object can vanish for a few frames in the middle of its fall: headlights
light the wall behind a bright object to its own grey level, the day/night IR
switch re-learns the background, a shake splits the track. Its track then
ends (more than `max_missed_frames` unseen) and a new track picks the object
up again. Each part alone may be too short or start too late to be judged a
throw; together they are the fall.

A rejected track with at least `stitch_min_points` points that went down is
kept as a fragment. When a later track is rejected too, it is joined to a fragment it
could continue (`continuation`: starts at most `stitch_max_gap_s` after the
fragment's last point, not above it by more than `stitch_max_rise_px`, within
`stitch_max_dx_px` sideways) and the joined track is judged again with the
same fall test: two unrelated tracks rarely make one gravity fall.
"""

from __future__ import annotations

from collections import deque

from detection.settings import DetectorSettings
from detection.tracking import Track, TrackPoint


def continuation(first: Track, later: Track, s: DetectorSettings) -> list[TrackPoint] | None:
    """The points of `later` that continue `first` (those after its last point), or None if it cannot."""
    last = first.points[-1]
    pts = [p for p in later.points if p.t > last.t]
    if not pts or len(pts) < len(later.points) // 2:
        return None                              # mostly overlapping in time: two things at once
    head = pts[0]
    gap = head.t - last.t
    if gap > s.stitch_max_gap_s:
        return None
    if head.y < last.y - s.stitch_max_rise_px or abs(head.x - last.x) > s.stitch_max_dx_px:
        return None
    if len(first.points) + len(pts) < s.min_track_points:
        return None
    return pts


def join(first: Track, pts: list[TrackPoint], later: Track) -> Track:
    """One track of `first`'s points followed by `pts` (from `later`), counters summed."""
    frac = len(pts) / max(1, len(later.points))
    return Track(first.id, first.points + pts, ambiguous=first.ambiguous + round(later.ambiguous * frac),
                 clutter=first.clutter + later.clutter * frac)


class Fragments:
    """Recently rejected tracks that a later track may continue (at most `stitch_max_fragments`)."""

    def __init__(self, s: DetectorSettings) -> None:
        self.s = s
        self.items: deque[Track] = deque(maxlen=max(1, s.stitch_max_fragments))

    def add(self, track: Track, reason: str = "") -> None:
        """Keep a rejected track as a fragment, unless it did not go down at all (`not_down` and
        its last point no lower than its first by `stitch_max_rise_px`): standing blobs (codec
        artefacts after an I-frame, lit windows) would otherwise fill the bounded list and push
        out the part of a fall that a later track continues. An object held at the window that
        has just started to fall when its track broke is kept."""
        if reason == "not_down" and track.points[-1].y - track.points[0].y <= self.s.stitch_max_rise_px:
            return
        if self.s.stitch_max_gap_s > 0 and len(track.points) >= self.s.stitch_min_points:
            self.items.append(track)

    def candidates(self, later: Track) -> list[tuple[Track, list[TrackPoint]]]:
        """Fragments `later` may continue, the most recent first, with the points that continue them."""
        out = []
        for frag in reversed(self.items):
            if frag is later:
                continue
            pts = continuation(frag, later, self.s)
            if pts is not None:
                out.append((frag, pts))
        return out

    def remove(self, track: Track) -> None:
        try:
            self.items.remove(track)
        except ValueError:
            pass

    def expire(self, t: float) -> None:
        """Forget fragments that ended more than `stitch_max_gap_s` + `max_track_seconds` before t."""
        horizon = t - self.s.stitch_max_gap_s - self.s.max_track_seconds
        while self.items and self.items[0].t_last < horizon:
            self.items.popleft()

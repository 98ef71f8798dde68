"""A live HLS media playlist with a sliding window (RFC 8216 section 4.3, 6.2.1, 6.2.2).

Pure: the caller passes times in. Rendering uses the ``m3u8`` library's model.

- EXT-X-TARGETDURATION is fixed at construction (4.3.3.1: it MUST NOT change). The caller picks
  a value that every EXTINF, rounded to the nearest integer, stays within:
  ``relay.hls.segmenter.Segmenter.target_duration`` (the configured target rounded up, more
  only for a longer GOP), which the segmenter then cuts at even without a keyframe. A segment
  whose EXTINF rounds above the target anyway is still listed, counted in ``overlong``; the
  target never changes.
- EXT-X-MEDIA-SEQUENCE advances by one per segment leaving the window (6.2.1) and
  EXT-X-DISCONTINUITY-SEQUENCE by one per leaving segment that carried EXT-X-DISCONTINUITY.
- A segment leaving the window stays available for its own duration plus the duration of the
  longest playlist that listed it (6.2.2); only then does ``expired`` return it for deletion.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import datetime

import m3u8


@dataclass(frozen=True, slots=True)
class _Entry:
    uri: str
    duration: float
    program_date_time: datetime
    discontinuity: bool


def rounded_duration(duration: float) -> int:
    """An EXTINF rounded to the nearest integer as RFC 8216 4.3.3.1 compares it with the target
    duration: halves up, as validators read it (Python's ``round`` takes 2.5 to 2)."""
    return math.floor(duration + 0.5)


class MediaPlaylist:
    """The last ``window`` segments of a live stream.

    Attributes:
        target_duration: EXT-X-TARGETDURATION, whole seconds.
        media_sequence: Media Sequence Number of the first listed segment.
        discontinuity_sequence: EXT-X-DISCONTINUITY-SEQUENCE.
        ended: True once ``end()`` was called (EXT-X-ENDLIST).
        overlong: segments listed whose rounded duration (``rounded_duration``) exceeded the
            target duration.
    """

    def __init__(self, target_duration: int, window: int = 6, media_sequence: int = 0) -> None:
        if target_duration < 1:
            raise ValueError(f"target_duration: must be >= 1, got {target_duration}")
        if window < 1:
            raise ValueError(f"window: must be >= 1, got {window}")
        self.target_duration = target_duration
        self.window = window
        self.media_sequence = media_sequence
        self.discontinuity_sequence = 0
        self.ended = False
        self.overlong = 0
        self._entries: deque[_Entry] = deque()
        self._removed: deque[tuple[float, str]] = deque()  # (deletable at, uri)

    @property
    def uris(self) -> list[str]:
        """URIs currently listed, oldest first."""
        return [e.uri for e in self._entries]

    def add(
        self,
        uri: str,
        duration: float,
        program_date_time: datetime,
        discontinuity: bool,
        *,
        now: float | None = None,
    ) -> None:
        """List a new segment, sliding the window.

        Args:
            uri: the segment's URI relative to the playlist.
            duration: seconds (EXTINF).
            program_date_time: wall-clock time of the segment's first sample (timezone-aware).
            discontinuity: True to put EXT-X-DISCONTINUITY before it.
            now: Unix time of this update, which starts the expiry clock of segments leaving
                the window; defaults to the new segment's end in wall time.
        """
        if self.ended:
            raise ValueError("playlist already ended")
        if rounded_duration(duration) > self.target_duration:
            self.overlong += 1
        self._entries.append(_Entry(uri, duration, program_date_time, discontinuity))
        if now is None:
            now = program_date_time.timestamp() + duration
        # The playlist last distributed with the leaving segment is the one before this add.
        listed = sum(e.duration for e in self._entries) - duration
        while len(self._entries) > self.window:
            gone = self._entries.popleft()
            self.media_sequence += 1
            if gone.discontinuity:
                self.discontinuity_sequence += 1
            self._removed.append((now + gone.duration + listed, gone.uri))

    def end(self) -> None:
        """Mark the playlist complete: EXT-X-ENDLIST is rendered from now on."""
        self.ended = True

    def expired(self, now: float) -> list[str]:
        """Segments removed from the window whose availability period (6.2.2) is over.

        Each URI is returned once.

        Args:
            now: Unix time.

        Returns:
            URIs to delete, oldest first.
        """
        out: list[str] = []
        while self._removed and self._removed[0][0] <= now:
            out.append(self._removed.popleft()[1])
        return out

    def render(self) -> str:
        """The playlist text."""
        playlist = m3u8.M3U8()
        playlist.version = 3
        playlist.target_duration = self.target_duration
        playlist.media_sequence = self.media_sequence
        playlist.discontinuity_sequence = self.discontinuity_sequence
        playlist.is_endlist = self.ended
        for e in self._entries:
            playlist.add_segment(
                m3u8.Segment(
                    uri=e.uri,
                    duration=e.duration,
                    program_date_time=e.program_date_time,
                    discontinuity=e.discontinuity,
                )
            )
        text: str = playlist.dumps(infspec="milliseconds")
        if "#EXT-X-MEDIA-SEQUENCE" not in text:
            # m3u8 leaves out a zero sequence; state it, as players expect to see it.
            text = text.replace("#EXT-X-VERSION", "#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-VERSION", 1)
        return text

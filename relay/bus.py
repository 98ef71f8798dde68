"""The bus: one ``Stream`` per source, fanning frames out to any number of subscribers.

A producer never blocks (MediaMTX's ``stream/``): each subscriber has a bounded queue, and one
that falls behind loses frames up to the next keyframe (or, from a camera that sends none, up to
any video frame after ``KEYFRAME_WAIT_SECONDS``) and then gets a frame flagged as a
discontinuity. A GOP cache (frames since the last video keyframe: an IDR/IRAP or recovery point,
see ``Frame.key``) lets a new subscriber start at once on a keyframe instead of waiting up to a GOP.
The cache is bounded in bytes and frames; a GOP that outgrows it is dropped from the cache (new
subscribers then wait for the next keyframe), counted, and logged once until a GOP fits again.
A subscriber's fall behind is counted and logged as one line when it ends (how many frames it
lost), never a line per frame; ``Stream.statistics()`` feeds the status snapshot.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from types import TracebackType

import trio

from relay.media import Codec, Frame, Kind, Track

log = logging.getLogger(__name__)

_VIDEO_CODECS = frozenset(c for c in Codec if c.kind is Kind.VIDEO)
GOP_CACHE_MAX_FRAMES = 1500
"""A GOP longer than this (60 s at 25 fps) is not cached; new subscribers wait for a keyframe."""
KEYFRAME_WAIT_SECONDS = 10.0
"""A subscriber waiting for a keyframe (to start, or to resume after falling behind) takes any
video frame once this much video came without one: a camera that sends none (intra refresh
without recovery points, an IDR only on request) still reaches every consumer."""
GOP_CACHE_MAX_BYTES = 64 * 1024 * 1024
"""Default per-stream bound on the GOP cache's payload bytes (``Stream(gop_cache_bytes=...)``):
about 50 s of a 10 Mbit/s camera. A larger GOP is not cached; new subscribers wait for a
keyframe."""


@dataclasses.dataclass(frozen=True, slots=True)
class StreamStatistics:
    """A Stream's counters at one instant (trio's ``statistics()`` idiom).

    Attributes:
        frames_in: frames published.
        bytes_in: their payload bytes.
        subscribers: current subscriptions.
        subscriber_drops: frames subscribers lost by falling behind (their queue full), up to
            the keyframe each resumed at; the first wait for a keyframe is not counted.
        gop_cache_bytes: payload bytes in the GOP cache now.
        gop_cache_overflows: GOPs dropped from the cache for outgrowing its bounds.
    """

    frames_in: int
    bytes_in: int
    subscribers: int
    subscriber_drops: int
    gop_cache_bytes: int
    gop_cache_overflows: int


class Subscription:
    """One consumer's bounded view of a Stream; iterate it to receive frames.

    Attributes:
        name: what consumes it (``hls``, ``rtmp``...), for the log line when it falls behind.
        delivered: frames queued for the consumer.
        dropped: frames it never got: before its first keyframe, and while behind.
    """

    def __init__(self, stream: Stream, max_frames: int, name: str) -> None:
        self._stream = stream
        self.name = name
        self._send, self._receive = trio.open_memory_channel[Frame](max_frames)
        self._waiting_for_key = True
        self._waiting_from: tuple[int, int] | None = None  # (track index, pts) first dropped
        self._resume_flag = False
        self._behind = 0  # frames lost in the current fall behind, logged when it ends
        self.delivered = 0
        self.dropped = 0

    def _offer(self, frame: Frame) -> None:
        if self._waiting_for_key:
            if not _starts_gop(frame, self._stream.has_video) and not self._waited(frame):
                self._drop()
                return
            self._waiting_for_key = False
            self._waiting_from = None
            if self._resume_flag and not frame.discontinuity:
                frame = dataclasses.replace(frame, discontinuity=True)
        try:
            self._send.send_nowait(frame)
        except trio.WouldBlock:
            self._waiting_for_key = True
            self._resume_flag = True
            self._drop()
        except trio.ClosedResourceError:
            pass
        else:
            self.delivered += 1
            if self._behind:
                self._log_behind("resumed at a keyframe")

    def _drop(self) -> None:
        self.dropped += 1
        if self._resume_flag:  # behind, not the first wait for a keyframe
            self._behind += 1
            self._stream.subscriber_drops += 1

    def _log_behind(self, end: str) -> None:
        log.warning("stream=%s subscriber=%s fell behind: lost %d frames; %s",
                    self._stream.name, self.name, self._behind, end)
        self._behind = 0

    def _waited(self, frame: Frame) -> bool:
        """Whether video came for KEYFRAME_WAIT_SECONDS without a keyframe, up to this frame."""
        track = frame.track
        if track.kind is not Kind.VIDEO:
            return False
        since = self._waiting_from
        if since is None or since[0] != track.index or frame.pts < since[1]:
            self._waiting_from = (track.index, frame.pts)
            return False
        return frame.pts - since[1] >= KEYFRAME_WAIT_SECONDS * track.clock_rate

    async def receive(self) -> Frame:
        """The next frame; raises ``trio.EndOfChannel`` once the stream is closed."""
        return await self._receive.receive()

    def receive_nowait(self) -> Frame:
        """The next frame already queued, for a consumer that takes a batch per wakeup.

        Raises:
            trio.WouldBlock: none is queued.
            trio.EndOfChannel: the stream is closed and every frame taken.
        """
        return self._receive.receive_nowait()

    @property
    def queued(self) -> int:
        """Frames delivered and not yet taken: a consumer that fell behind is not idle."""
        return self._receive.statistics().current_buffer_used

    def __aiter__(self) -> AsyncIterator[Frame]:
        return self._receive.__aiter__()

    def close(self) -> None:
        if self._behind:
            self._log_behind("closed before the next keyframe")
        self._stream._subscribers.discard(self)
        self._send.close()
        self._receive.close()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _starts_gop(frame: Frame, has_video: bool) -> bool:
    """True if a consumer may start (or resume) at this frame."""
    if has_video:
        return frame.key and frame.track.kind is Kind.VIDEO
    return True


class Stream:
    """The media of one source: its current tracks, a GOP cache, and the fan-out.

    Args:
        name: the stream's name, for log lines.
        gop_cache_bytes: the most payload bytes the GOP cache holds.

    Attributes:
        gop_cache_overflows: GOPs dropped from the cache for outgrowing its frame or byte bound.
        gop_seconds: the last keyframe-to-keyframe interval of the video, 0.0 until two cached
            keyframes (the LL-HLS muxer fixes its target duration from it).
        subscriber_drops: frames subscribers lost by falling behind (see StreamStatistics).
    """

    def __init__(self, name: str, gop_cache_bytes: int = GOP_CACHE_MAX_BYTES) -> None:
        self.name = name
        self.tracks: dict[int, Track] = {}
        self._subscribers: set[Subscription] = set()
        self._gop: list[Frame] = []
        self._gop_bytes = 0
        self._gop_cache_bytes = gop_cache_bytes
        self._overflowing = False  # the last GOP outgrew the cache: logged once, until one fits
        self._closed = False
        self.frames_in = 0
        self.bytes_in = 0
        self.gop_cache_overflows = 0
        self.gop_seconds = 0.0
        self.subscriber_drops = 0

    @property
    def has_video(self) -> bool:
        return any(t.kind is Kind.VIDEO for t in self.tracks.values())

    def set_tracks(self, tracks: list[Track]) -> None:
        """Announce the tracks a (re)connected source will send, before its first frame."""
        self.tracks = {t.index: t for t in tracks}
        self._gop.clear()
        self._gop_bytes = 0

    def publish(self, frame: Frame) -> None:
        """Hand a frame to every subscriber without blocking."""
        track = frame.track
        self.tracks[track.index] = track
        size = frame.size
        self.frames_in += 1
        self.bytes_in += size
        gop = self._gop
        if frame.key and track.codec in _VIDEO_CODECS:
            if self._overflowing and gop:
                self._overflowing = False  # the previous GOP fitted
            if gop and gop[0].track.index == track.index and frame.dts > gop[0].dts:
                self.gop_seconds = (frame.dts - gop[0].dts) / track.clock_rate
            gop.clear()
            self._gop_bytes = 0
            self._cache(frame, size)
        elif gop:
            self._cache(frame, size)
        # a copy, as an offer may close a subscription (and so change the set) under us
        for sub in list(self._subscribers):
            sub._offer(frame)

    def _cache(self, frame: Frame, size: int) -> None:
        gop = self._gop
        if len(gop) < GOP_CACHE_MAX_FRAMES and self._gop_bytes + size <= self._gop_cache_bytes:
            gop.append(frame)
            self._gop_bytes += size
            return
        gop.clear()
        self._gop_bytes = 0
        self.gop_cache_overflows += 1
        if not self._overflowing:
            self._overflowing = True
            log.warning("stream=%s GOP cache: a GOP outgrew %d bytes or %d frames "
                        "(gop_cache_bytes, GOP_CACHE_MAX_FRAMES); not cached, new subscribers "
                        "wait for the next keyframe", self.name, self._gop_cache_bytes,
                        GOP_CACHE_MAX_FRAMES)

    def subscribe(self, max_frames: int = 512, name: str = "subscriber") -> Subscription:
        """A new subscription, primed from the GOP cache so it starts on a keyframe at once.

        Args:
            max_frames: its queue's bound; a consumer this far behind loses frames.
            name: what consumes it, for the log line when it falls behind.
        """
        if self._closed:
            raise trio.ClosedResourceError(f"stream {self.name} is closed")
        sub = Subscription(self, max_frames, name)
        for frame in self._gop[:max_frames]:
            sub._offer(frame)
        self._subscribers.add(sub)
        return sub

    def statistics(self) -> StreamStatistics:
        return StreamStatistics(
            frames_in=self.frames_in,
            bytes_in=self.bytes_in,
            subscribers=len(self._subscribers),
            subscriber_drops=self.subscriber_drops,
            gop_cache_bytes=self._gop_bytes,
            gop_cache_overflows=self.gop_cache_overflows,
        )

    def close(self) -> None:
        """End the stream: every subscriber's iteration finishes after its queued frames."""
        self._closed = True
        for sub in tuple(self._subscribers):
            sub._send.close()
        self._subscribers.clear()

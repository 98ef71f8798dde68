"""Decode timestamps (DTS) for H.264 and H.265 received over RTP, which carries presentation
times only (RFC 6184 5.1, RFC 7798 4.1): MPEG-TS and FLV need a DTS that increases in decoding
order and never passes the PTS.

The rule: the DTS of the i-th picture in decoding order is the PTS of the (i - D)-th picture in
output order, D being the stream's reorder depth, the most pictures that precede any picture in
decoding order and follow it in output order (H.264 max_num_reorder_frames, E.2.1; H.265
sps_max_num_reorder_pics, 7.4.3.2.1). It is when a decoder holding D pictures for reordering
outputs a picture (the bumping process, H.264 C.4.5.3, H.265 C.5.2.2), and it is what x264 and
FFmpeg write. It is causal: by decoding position i every picture of output rank i - D or lower
has arrived (otherwise that picture would have more than D predecessors that it precedes in
output order), so the smallest of the last D + 1 PTS values, kept in a min-heap, is the DTS. It is
<= the current PTS (which is in the heap) and increasing, and it needs no frame duration: frame
rate changes, timestamp jitter and lost frames do it no harm.

D comes from the SPS when it says. Otherwise (H.264 without the VUI bitstream restriction) it is
learned from picture order counts (``relay.codecs.poc``): a POC above the next expected one
(POC step learned from the stream) leaves holes, pictures still to come, and D is raised before
they arrive to the number of pictures already received above the lowest hole. Until D + 1 PTS
values are queued (at the start, or after D was raised) the DTS is spread between the last DTS
and the smallest PTS still to come: the heap's minimum, or the PTS the lowest hole is expected
at (interpolated from its POC neighbours). At each IDR / IRAP with NoRaslOutputFlag (where the
POC restarts and all earlier pictures are output before it) a learned D falls back to the
reordering actually seen, which makes the DTS jump forward, never back.

Fast path: when the SPS rules reordering out (H.264 pic_order_cnt_type 2 or
max_num_reorder_frames 0, H.265 sps_max_num_reorder_pics 0), DTS = PTS and only keyframes are
looked into (for in-band parameter sets). A PTS that goes back in that mode means the SPS lied:
that frame is refused and POC tracking is turned on.

Refused frames (garbled or missing slice header, unknown parameter sets, an H.265 RASL picture
of the IRAP that started decoding, a PTS that leaves no room for a valid DTS) raise
``RemoteProtocolError`` and leave the extractor as it was; the caller drops the frame.
"""

from __future__ import annotations

import heapq
import math
from collections import deque

from relay.codecs import h264, h265
from relay.codecs.poc import H264PocDecoder, H265PocDecoder, first_slice
from relay.errors import RemoteProtocolError
from relay.media import Codec, Frame, NalUnits, Track

MAX_DEPTH = 16
"""Largest reorder depth: H.264 MaxDpbFrames and H.265 MaxDpbSize never exceed 16."""
RECENT = 2 * MAX_DEPTH + 2
"""(POC, PTS) pairs kept per POC period for learning D."""
STEP_LEARN_AFTER = 8
"""Pictures after which the POC step is taken from the stream (the gcd of its POC offsets)."""

__all__ = ["DtsExtractor"]

_KEY_PARAMS = {
    Codec.H264: (frozenset((h264.NON_IDR, h264.IDR)), frozenset((h264.SPS, h264.PPS)), 0, 0x1F),
    Codec.H265: (frozenset(range(32)), frozenset((h265.SPS, h265.PPS)), 1, 0x3F),
}


class DtsExtractor:
    """Derives the DTS of each H.264 / H.265 access unit of one track, fed in decoding order.

    Attributes:
        depth: the reorder depth in use (pictures).
        refused: frames refused so far.
    """

    __slots__ = (
        "_base",
        "_codec",
        "_count",
        "_declared",
        "_distrust",
        "_fast",
        "_gcd",
        "_heap",
        "_holes",
        "_last",
        "_max_poc",
        "_poc",
        "_recent",
        "_seen",
        "_sps",
        "_step",
        "_track",
        "depth",
        "refused",
    )

    def __init__(self) -> None:
        self.refused = 0
        self.reset()

    @property
    def fast_path(self) -> bool:
        """True while the SPS rules reordering out and DTS = PTS without parsing slices."""
        return self._fast and not self._heap

    def reset(self) -> None:
        """Forgets the stream (after a source reconnect or any timeline discontinuity)."""
        self._track: object = None
        self._codec: Codec | None = None
        self._poc: H264PocDecoder | H265PocDecoder | None = None
        self._sps: object = None
        self._declared: int | None = None
        self._fast = False
        self._distrust = False
        self.depth = 0
        self._seen = 0
        self._heap: list[int] = []
        self._last: int | None = None
        self._recent: deque[tuple[int, int]] = deque(maxlen=RECENT)
        self._holes: set[int] = set()
        self._base: int | None = None
        self._max_poc = 0
        self._step = 2
        self._gcd = 0
        self._count = 0

    def extract(self, frame: Frame, pts: int | None = None) -> int:
        """The DTS of ``frame``, in the units of ``frame.pts``.

        Args:
            frame: the next access unit in decoding order (its NAL units), ``pts`` on a 64-bit
                timeline, ``track`` an H.264 or H.265 track whose parameter sets are known.
            pts: the presentation time to use instead of ``frame.pts`` (the ingest's timeline
                position, so it builds no Frame just to ask).

        Returns:
            A DTS greater than every DTS returned before and at most ``frame.pts``; equal to
            ``frame.pts`` when the stream has no reordering.

        Raises:
            RemoteProtocolError: the frame cannot be given a DTS (see the module docstring);
                drop it.
        """
        if pts is None:
            pts = frame.pts
        try:
            if frame.track is not self._track:
                self._set_track(frame)
            nals = frame.data
            if isinstance(nals, bytes):
                raise RemoteProtocolError("DTS: a video frame's payload is not NAL units")
            if self._fast:
                if frame.key:
                    self._in_band(nals)
                if self._fast and not self._heap:
                    return self._fast_dts(pts)
            return self._reordered(frame, nals, pts)
        except RemoteProtocolError:
            self.refused += 1
            raise

    def _set_track(self, frame: Frame) -> None:
        track = frame.track
        if track.codec not in (Codec.H264, Codec.H265):
            raise RemoteProtocolError(f"DTS: codec {track.codec} is not H.264 or H.265")
        if track.codec != self._codec or self._poc is None:
            self._poc = H264PocDecoder() if track.codec == Codec.H264 else H265PocDecoder()
            self._codec = track.codec
            self._step = 2 if track.codec == Codec.H264 else 1
            self._gcd = self._count = 0
            self._base = None
        for nal in track.parameter_sets:
            self._poc.add_parameter_set(nal)
        self._track = track
        self._update_declared()

    def _in_band(self, nals: NalUnits) -> None:
        assert self._poc is not None and self._codec is not None
        _, params = first_slice(nals, *_KEY_PARAMS[self._codec])
        known = self._track.parameter_sets if isinstance(self._track, Track) else ()
        for nal in params:
            if nal not in known:  # the usual case: the track's own, already read
                self._poc.add_parameter_set(nal)
        self._update_declared()

    def _update_declared(self) -> None:
        assert self._poc is not None
        sps = self._poc.latest_sps
        if sps is self._sps:
            return
        self._sps = sps
        declared: int | None
        if isinstance(sps, h264.SpsOrderInfo):
            declared = 0 if sps.poc_type == 2 else sps.max_num_reorder_frames
        elif isinstance(sps, h265.HevcSpsOrderInfo):
            declared = sps.max_num_reorder_pics
        else:
            declared = None
        if declared != self._declared:
            self._declared, self._seen = declared, 0
        fast = declared == 0 and not self._distrust
        if fast and not self._fast:
            self._heap.clear()  # pictures already given a DTS; the next one has a larger PTS
            self.depth = 0
        self._fast = fast
        if declared is not None and declared > self.depth:
            self.depth = declared

    def _fast_dts(self, pts: int) -> int:
        last = self._last
        if last is not None and pts <= last:
            self._fast, self._distrust = False, True
            raise RemoteProtocolError(
                f"DTS: presentation time went back ({pts} after {last}) although the SPS "
                "declares no reordering; tracking picture order from now on"
            )
        self._last = pts
        return pts

    def _reordered(self, frame: Frame, nals: NalUnits, pts: int) -> int:
        assert self._poc is not None
        picture = self._poc.decode(nals)
        self._update_declared()
        if picture.skipped:
            raise RemoteProtocolError("DTS: RASL picture of the first IRAP picture (not decodable)")
        saved = (
            self.depth, self._seen, self._heap.copy(), self._recent.copy(), self._holes.copy(),
            self._base, self._max_poc, self._step, self._gcd, self._count,
        )
        try:
            if picture.reset or self._base is None:
                self._restart(picture.poc, pts, picture.reset)
            else:
                self._learn(picture.poc, pts)
            dts = self._next_dts(pts, frame.track.clock_rate)
            last = self._last
            if last is not None and dts <= last:
                dts = last + 1
            if dts > pts:
                raise RemoteProtocolError(
                    f"DTS: presentation time {pts} leaves no room after decode time {last}"
                )
        except RemoteProtocolError:
            (
                self.depth, self._seen, self._heap, self._recent, self._holes,
                self._base, self._max_poc, self._step, self._gcd, self._count,
            ) = saved
            raise
        self._last = dts
        return dts

    def _restart(self, poc: int, pts: int, reset: bool) -> None:
        """Starts a POC period at an IDR / IRAP (or wherever tracking starts)."""
        self._recent.clear()
        self._holes.clear()
        self._recent.append((poc, pts))
        self._base = self._max_poc = poc
        if reset:
            heap = self._heap
            if heap and max(heap) >= pts:  # output before an IDR yet later: garbage, forget it
                heap[:] = [x for x in heap if x < pts]
                heapq.heapify(heap)
            self.depth = max(self._declared or 0, self._seen)

    def _learn(self, poc: int, pts: int) -> None:
        recent, holes = self._recent, self._holes
        above = sum(1 for q, _ in recent if q > poc)
        if above > MAX_DEPTH:  # POC numbering restarted without an IDR (mmco 5, lost IDR)
            self._restart(poc, pts, False)
            return
        offset = poc - (self._base or 0)
        if offset:
            self._gcd = math.gcd(self._gcd, offset)
            self._count += 1
            step = self._gcd if self._count >= STEP_LEARN_AFTER else min(self._step, self._gcd)
            if step != self._step:
                self._step = step
                base = self._base or 0
                holes.intersection_update([h for h in holes if (h - base) % step == 0])
        if poc > self._max_poc:
            gap = (poc - self._max_poc) // self._step - 1
            if 0 < gap <= MAX_DEPTH:
                holes.update(range(self._max_poc + self._step, poc, self._step))
            self._max_poc = poc
        else:
            holes.discard(poc)
        recent.append((poc, pts))
        self._seen = max(self._seen, above)
        need = above
        while holes:
            lowest = min(holes)
            ahead = sum(1 for q, _ in recent if q > lowest)
            if ahead <= MAX_DEPTH:
                need = max(need, ahead)
                break
            holes.discard(lowest)  # that long in coming: never coming (skipped POC)
        if need > self.depth:
            self.depth = need

    def _next_dts(self, pts: int, clock_rate: int) -> int:
        heap = self._heap
        heapq.heappush(heap, pts)
        if len(heap) > self.depth:
            dts = heapq.heappop(heap)
            while len(heap) > self.depth:  # D fell: the DTS jumps forward
                dts = heapq.heappop(heap)
            return dts
        bound = heap[0]
        expected = self._hole_pts()
        if expected is not None:
            bound = min(bound, expected)
        slots = self.depth + 1 - len(heap)  # this frame and those until pops resume
        if self._last is None:
            return bound - slots * max(1, clock_rate // 30)
        return self._last + max(1, (bound - self._last) // (slots + 1))

    def _hole_pts(self) -> int | None:
        """The PTS the lowest missing POC is expected at, from its received neighbours."""
        if not self._holes:
            return None
        lowest = min(self._holes)
        below = max(((q, p) for q, p in self._recent if q < lowest), default=None)
        above = min(((q, p) for q, p in self._recent if q > lowest), default=None)
        if below is None or above is None:
            return None
        (qb, pb), (qa, pa) = below, above
        return pb + (pa - pb) * (lowest - qb) // (qa - qb)

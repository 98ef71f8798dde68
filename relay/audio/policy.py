"""A stream's audio policy, applied between the depacketizers and the bus.

HLS in browsers and every CDN ingest take AAC; cameras often send G.711 or nothing. The policy
decides per stream:

- ``auto`` (default): AAC passes untouched, any other audio is transcoded to AAC, and a stream
  without audio gets silent AAC when it has RTMP destinations (ingests such as YouTube and
  Twitch expect an audio track).
- ``copy``: audio passes as it is (an output that cannot carry it leaves it out).
- ``aac``: like auto, without the silent track.
- ``off``: audio is dropped.
- ``silent``: the source's audio is dropped and silent AAC takes its place.
"""

from __future__ import annotations

from enum import StrEnum

from relay.audio.transcode import AacTranscoder, SilentAac
from relay.media import Codec, Frame, Kind, Track


class AudioPolicy(StrEnum):
    AUTO = "auto"
    COPY = "copy"
    AAC = "aac"
    OFF = "off"
    SILENT = "silent"


class AudioStage:
    """Turns the source's frames into the stream's frames under one policy.

    Args:
        policy: what to do with audio.
        needs_audio: an output wants an audio track (RTMP destinations), for ``auto``.
    """

    def __init__(self, policy: AudioPolicy, needs_audio: bool) -> None:
        self.policy = policy
        self.needs_audio = needs_audio
        self._transcoders: dict[int, AacTranscoder] = {}
        self._dropped: set[int] = set()
        self._silent: SilentAac | None = None

    def tracks(self, source: list[Track]) -> list[Track]:
        """The tracks the stream will carry, given the source's; call once per session."""
        self._transcoders.clear()
        self._dropped.clear()
        self._silent = None
        out = []
        for track in source:
            if track.kind is not Kind.AUDIO:
                out.append(track)
            elif self.policy in (AudioPolicy.OFF, AudioPolicy.SILENT):
                self._dropped.add(track.index)
            elif self.policy is AudioPolicy.COPY or track.codec is Codec.AAC:
                out.append(track)
            else:
                transcoder = AacTranscoder(track)
                self._transcoders[track.index] = transcoder
                out.append(transcoder.track)
        has_audio = any(t.kind is Kind.AUDIO for t in out)
        has_video = any(t.kind is Kind.VIDEO for t in out)
        wants_silence = self.policy is AudioPolicy.SILENT or (
            self.policy is AudioPolicy.AUTO and self.needs_audio
        )
        if wants_silence and has_video and not has_audio:
            self._silent = SilentAac(max(t.index for t in source) + 1)
            out.append(self._silent.track)
        return out

    @property
    def transcoding(self) -> bool:
        return bool(self._transcoders)

    def push(self, frame: Frame) -> list[Frame]:
        """The frames to publish for one source frame (timeline timestamps)."""
        index = frame.track.index
        if index in self._dropped:
            return []
        transcoder = self._transcoders.get(index)
        if transcoder is not None:
            return transcoder.push(frame)
        if self._silent is not None and frame.track.kind is Kind.VIDEO:
            return [frame, *self._silent.frames_until(frame.dts / frame.track.clock_rate)]
        return [frame]

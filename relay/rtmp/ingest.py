"""Ingest preflight: the published rules of common CDN ingests, checked against a stream.

CDN ingests seldom refuse a stream outright; they degrade it (no DVR, buffering, "poor
connection" warnings) or silently drop it when it breaks their rules. The rules here are the ones
the services publish in their encoder settings pages (YouTube Live "encoder settings", Twitch
"broadcast guidelines", Facebook Live "live video specs"). ``check`` is pure: the driver feeds
it what it measured and logs the problems it names. ``check_enhanced_rtmp`` does the same with
what the server said in its ``connect`` reply.
"""

from __future__ import annotations

from dataclasses import dataclass

from relay.media import Codec


@dataclass(frozen=True, slots=True)
class IngestRules:
    service: str
    max_keyframe_interval: float  # seconds
    audio_required: bool
    audio_sample_rates: tuple[int, ...]
    video_codecs: tuple[Codec, ...]
    max_video_bitrate: int | None = None  # bits per second
    max_height: int | None = None


GENERIC = IngestRules("RTMP server", 10.0, False, (), (Codec.H264, Codec.H265))
RULES: dict[str, IngestRules] = {
    "youtube": IngestRules("YouTube", 4.0, True, (44100, 48000), (Codec.H264, Codec.H265)),
    "twitch": IngestRules("Twitch", 2.0, True, (44100, 48000), (Codec.H264,), 8_500_000, 1080),
    "facebook": IngestRules("Facebook", 2.0, True, (44100, 48000), (Codec.H264,), 8_000_000,
                            1080),
}
_HOSTS = {
    "youtube.com": "youtube", "youtube-nocookie.com": "youtube",
    "twitch.tv": "twitch", "live-video.net": "twitch", "contribute.live-video.net": "twitch",
    "facebook.com": "facebook", "fbcdn.net": "facebook",
}


def rules_for(host: str) -> IngestRules:
    """The rules of the service that owns ``host``, or lenient generic ones."""
    host = host.lower().rstrip(".")
    for domain, service in _HOSTS.items():
        if host == domain or host.endswith("." + domain):
            return RULES[service]
    return GENERIC


@dataclass(frozen=True, slots=True)
class Observed:
    """What the relay measured of a stream."""

    video_codec: Codec | None
    audio_codec: Codec | None
    audio_sample_rate: int | None
    keyframe_interval: float | None  # longest seen, seconds
    video_bitrate: int | None = None
    height: int | None = None


def check(rules: IngestRules, seen: Observed) -> list[str]:
    """Each rule the stream breaks, as a sentence a user can act on."""
    problems = []
    if seen.video_codec is not None and seen.video_codec not in rules.video_codecs:
        problems.append(f"{rules.service} does not take {seen.video_codec} video")
    if seen.keyframe_interval is not None and seen.keyframe_interval > rules.max_keyframe_interval:
        problems.append(
            f"keyframe interval {seen.keyframe_interval:.1f} s is over {rules.service}'s "
            f"{rules.max_keyframe_interval:g} s (set the camera's GOP/I-frame interval lower)"
        )
    if rules.audio_required and seen.audio_codec is None:
        problems.append(f"{rules.service} expects an audio track and the stream has none")
    if seen.audio_codec is not None and seen.audio_codec is not Codec.AAC:
        problems.append(f"RTMP carries AAC audio; the stream's audio is {seen.audio_codec}")
    if (seen.audio_sample_rate and rules.audio_sample_rates
            and seen.audio_sample_rate not in rules.audio_sample_rates):
        rates = " or ".join(f"{r} Hz" for r in rules.audio_sample_rates)
        problems.append(
            f"audio sample rate {seen.audio_sample_rate} Hz: {rules.service} takes {rates}"
        )
    if (rules.max_video_bitrate and seen.video_bitrate
            and seen.video_bitrate > rules.max_video_bitrate):
        problems.append(
            f"video bitrate {seen.video_bitrate / 1e6:.1f} Mbit/s is over {rules.service}'s "
            f"{rules.max_video_bitrate / 1e6:g} Mbit/s"
        )
    if rules.max_height and seen.height and seen.height > rules.max_height:
        problems.append(f"{seen.height}p is over {rules.service}'s {rules.max_height}p")
    return problems


MAX_FOURCCS_SHOWN = 8  # a server's codec list is its own to fill; a warning names a few


def check_enhanced_rtmp(video_codec: Codec | None, fourccs: frozenset[str] | None) -> list[str]:
    """What the server's ``connect`` reply says of H.265, which travels only as Enhanced RTMP.

    A server without Enhanced RTMP drops such video with no error: nginx-rtmp records and
    relays the audio alone.

    Args:
        video_codec: the stream's video codec.
        fourccs: the codecs the server announced (``Connected.maybe_video_fourccs()``).
    """
    if video_codec is not Codec.H265:
        return []
    if fourccs is None:
        return [("the RTMP server announces no Enhanced RTMP (no fourCcList in its connect "
                 "reply): it may drop the H.265 video without an error, as nginx-rtmp does")]
    if "hvc1" in fourccs or "*" in fourccs:
        return []
    shown = ", ".join(repr(c[:4]) for c in sorted(fourccs)[:MAX_FOURCCS_SHOWN]) or "none"
    return [(f"the RTMP server's Enhanced RTMP codecs ({shown}) do not include H.265 (hvc1): "
             "it may drop the video")]

"""The audio policy between depacketizers and the bus."""

from relay.audio.policy import AudioPolicy, AudioStage
from relay.media import Codec, Frame, Kind, Track
from relay.rtp.sync import Timeline

VIDEO = Track(0, Codec.H264, 90000)
AAC = Track(1, Codec.AAC, 48000, audio_config=bytes.fromhex("1190"), sample_rate=48000,
            channels=2)
PCMA = Track(1, Codec.PCMA, 8000, sample_rate=8000, channels=1)


def video(n: int) -> Frame:
    return Frame(VIDEO, n * 3600, n * 3600, n == 0, b"\0\0\0\1\x65")


def test_auto_keeps_aac_and_transcodes_g711() -> None:
    stage = AudioStage(AudioPolicy.AUTO, needs_audio=False)
    assert stage.tracks([VIDEO, AAC]) == [VIDEO, AAC]
    tracks = stage.tracks([VIDEO, PCMA])
    assert [t.codec for t in tracks] == [Codec.H264, Codec.AAC] and stage.transcoding
    out = []
    for n in range(20):  # 20 ms of A-law silence per packet
        out += stage.push(Frame(PCMA, n * 160, n * 160, True, b"\xd5" * 160))
    assert out and all(f.track.codec is Codec.AAC for f in out)


def test_copy_passes_g711_and_off_drops_audio() -> None:
    assert AudioStage(AudioPolicy.COPY, False).tracks([VIDEO, PCMA]) == [VIDEO, PCMA]
    stage = AudioStage(AudioPolicy.OFF, False)
    assert stage.tracks([VIDEO, AAC]) == [VIDEO]
    assert stage.push(Frame(AAC, 0, 0, True, b"x")) == []


def test_silent_audio_for_rtmp_when_the_source_has_none() -> None:
    stage = AudioStage(AudioPolicy.AUTO, needs_audio=True)
    tracks = stage.tracks([VIDEO])
    assert [t.kind for t in tracks] == [Kind.VIDEO, Kind.AUDIO]
    frames = [f for n in range(26) for f in stage.push(video(n))]
    audio = [f for f in frames if f.track.kind is Kind.AUDIO]
    # one second of video is covered by ~47 AAC frames of 1024 samples at 48 kHz
    assert 45 <= len(audio) <= 49
    assert AudioStage(AudioPolicy.AUTO, needs_audio=False).tracks([VIDEO]) == [VIDEO]


def test_g711_realigned_by_a_sender_report_reaches_aac_without_a_step_back() -> None:
    """G.711 placed 300 ms late until the sender reports arrive: the timeline slews it back and
    the transcoder drops the overlap, so the AAC keeps whole-frame steps and ends up in sync."""
    timeline = Timeline(reference=0)
    timeline.add_track(0, 90000)
    timeline.add_track(1, 8000)
    stage = AudioStage(AudioPolicy.AUTO, needs_audio=True)
    stage.tracks([VIDEO, PCMA])
    timeline.place(0, 0, now=1.0)
    timeline.sender_report(0, 0, ntp_seconds=100.0)
    out = []
    for n in range(150):  # 3 s of 20 ms packets, each arriving 300 ms after its capture
        source = timeline.place(1, n * 160, now=1.3 + n * 0.02)
        if n == 50:
            timeline.sender_report(1, 0, ntp_seconds=100.0)
        pts, dts = timeline.stamp(1, source, source)
        out += stage.push(Frame(PCMA, pts, dts, True, b"\xd5" * 160))
    assert [b.pts - a.pts for a, b in zip(out, out[1:])] == [1024] * (len(out) - 1)
    assert timeline.realigned == 1
    # the last input sample (captured at 3.98 s) is in the last frame or the encoder's queue
    assert 0 <= 3.98 * 48000 - out[-1].pts < 5 * 1024

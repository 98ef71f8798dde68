"""G.711 (and AAC) to AAC-LC with PyAV: decodability, duration, tone, A/V sync of the output
timeline (onset within 5 ms of the input's), gaps and jumps; silent AAC."""

import math
import time
from array import array
from dataclasses import replace
from fractions import Fraction

import av
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.audio.transcode import AacTranscoder, SilentAac
from relay.errors import UnsupportedError
from relay.media import Codec, Frame, Track
from relay.rtp.g711 import G711Depacketizer, G711Packetizer, g711_track
from relay.rtp.packet import RtpPacket

RATE = 8000
OUT = 48000


def tone(seconds: float, rate: int, freq: float = 1000.0, amplitude: int = 16000) -> list[int]:
    step = 2 * math.pi * freq / rate
    return [round(amplitude * math.sin(step * i)) for i in range(round(seconds * rate))]


def pyav_encode(codec: str, samples: list[int], rate: int = RATE) -> list[av.Packet]:
    """Encodes mono s16 samples with a PyAV encoder (pcm_alaw, pcm_mulaw, aac)."""
    enc = av.CodecContext.create(codec, "w")
    enc.sample_rate, enc.layout = rate, "mono"
    enc.format = "fltp" if codec == "aac" else "s16"
    enc.time_base = Fraction(1, rate)
    enc.open()
    packets: list[av.Packet] = []
    step = enc.frame_size or len(samples)
    for at in range(0, len(samples), step):
        chunk = samples[at : at + step]
        frame = av.AudioFrame(format="s16", layout="mono", samples=len(chunk))
        raw = array("h", chunk).tobytes()
        frame.planes[0].update(raw + bytes(frame.planes[0].buffer_size - len(raw)))
        frame.sample_rate, frame.pts, frame.time_base = rate, at, Fraction(1, rate)
        if codec == "aac":
            frame = av.AudioResampler(format="fltp", layout="mono", rate=rate).resample(frame)[0]
            frame.pts = at
        packets += enc.encode(frame)
    return packets + list(enc.encode(None))


def g711_frames(
    codec: Codec, samples: list[int], start: int, drop: frozenset[int] | set[int] = frozenset()
) -> list[Frame]:
    """Encodes with PyAV, packetizes in 20 ms packets, sends through the wire format, and
    depacketizes; ``drop`` lists packet numbers lost on the way. The frames' pts stay as the
    driver's timeline would have them (RTP timestamps placed from ``start``)."""
    data = b"".join(bytes(p) for p in pyav_encode(str(codec), samples))
    assert len(data) == len(samples)
    track = g711_track(0, codec)
    pay = G711Packetizer(track, 8 if codec is Codec.PCMA else 0, 1, timestamp=start)
    dep = G711Depacketizer(track)
    frames = []
    for n, packet in enumerate(pay.push(data) + pay.flush()):
        if n in drop:
            continue
        for frame in dep.push(RtpPacket.parse(bytes(packet))):
            pts = start + (frame.pts - start) % 2**32  # the driver's unwrap
            frames.append(replace(frame, pts=pts, dts=pts))
    return frames


def decode(frames: list[Frame]) -> tuple[int, list[float]]:
    """(pts of the first decoded sample, left channel) of AAC frames, priming included."""
    dec = av.CodecContext.create("aac", "r")
    dec.extradata = frames[0].track.audio_config
    first = None
    left: list[float] = []
    for frame in frames:
        packet = av.Packet(frame.data)
        packet.pts, packet.time_base = frame.pts, Fraction(1, frame.track.clock_rate)
        for audio in dec.decode(packet):
            assert audio.sample_rate == OUT and audio.samples == 1024
            if first is None:
                first = audio.pts
            left += memoryview(bytes(audio.planes[0])).cast("f")[: audio.samples].tolist()
    assert first == frames[0].pts
    return first, left


def loud(left: list[float], threshold: float = 0.1) -> tuple[int, int]:
    """Indices of the first and last samples above ``threshold``."""
    above = [i for i, x in enumerate(left) if abs(x) > threshold]
    return above[0], above[-1]


def goertzel(samples: list[float], freq: float, rate: int) -> float:
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    return math.sqrt(max(0.0, s1 * s1 + s2 * s2 - coeff * s1 * s2)) / len(samples)


def run(transcoder: AacTranscoder, frames: list[Frame]) -> tuple[list[Frame], float]:
    """Output frames and the CPU seconds this process spent making them."""
    t0 = time.process_time()
    out = [f for frame in frames for f in transcoder.push(frame)] + transcoder.flush()
    return out, time.process_time() - t0


@pytest.mark.parametrize("codec", [Codec.PCMA, Codec.PCMU])
def test_g711_tone_to_aac_in_sync(codec: Codec) -> None:
    # 0.25 s of silence, 1 s of 1 kHz, 0.25 s of silence, from an arbitrary timeline position
    start = 3 * RATE + 37
    samples = [0] * (RATE // 4) + tone(1.0, RATE) + [0] * (RATE // 4)
    frames = g711_frames(codec, samples, start)
    transcoder = AacTranscoder(g711_track(5, codec))
    out, elapsed = run(transcoder, frames)
    track = transcoder.track
    assert (track.index, track.codec, track.clock_rate, track.sample_rate, track.channels) == (
        5, Codec.AAC, OUT, OUT, 2)
    assert track.audio_config[:2] == bytes.fromhex("1190")  # AAC-LC, 48 kHz, stereo
    assert all(f.track is track and f.key and f.pts == f.dts for f in out)
    assert [b.pts - a.pts for a, b in zip(out, out[1:])] == [1024] * (len(out) - 1)
    # duration: the input's 1.5 s plus the encoder's priming frame, within one frame
    start_out = start * OUT // RATE
    assert out[0].pts == start_out - 1024
    assert abs(out[-1].pts + 1024 - (start_out + 1.5 * OUT)) <= 1024
    first, left = decode(out)
    onset, offset = loud(left)
    # A/V sync: the tone starts and stops where the input said, within 5 ms
    assert abs((first + onset) / OUT - (start / RATE + 0.25)) < 0.005
    assert abs((first + offset) / OUT - (start / RATE + 1.25)) < 0.005
    body = left[onset + 4800 : onset + 4800 + 24000]
    assert goertzel(body, 1000, OUT) > 20 * goertzel(body, 1500, OUT)
    assert goertzel(body, 1000, OUT) > 20 * goertzel(body, 500, OUT)
    assert transcoder.filled == transcoder.trimmed == transcoder.resets == 0
    print(f"\n{codec}: {elapsed / len(out) * 1e6:.0f} µs CPU per AAC frame, "
          f"{elapsed / len(frames) * 1e6:.0f} µs per 20 ms input packet")
    assert elapsed / len(out) < 0.02  # far slower than real time would be a regression


def test_lost_packets_are_filled_with_silence_keeping_sync() -> None:
    start = 1000
    samples = tone(1.0, RATE) + [0] * (RATE // 2) + tone(0.5, RATE)
    frames = g711_frames(Codec.PCMA, samples, start, drop={10, 11, 12})
    transcoder = AacTranscoder(g711_track(0, Codec.PCMA))
    out, _ = run(transcoder, frames)
    assert transcoder.filled == 3 * 160 and transcoder.resets == 0
    assert [b.pts - a.pts for a, b in zip(out, out[1:])] == [1024] * (len(out) - 1)
    first, left = decode(out)
    second = next(i for i in range(round(1.25 * OUT), len(left)) if abs(left[i]) > 0.1)
    assert abs((first + second) / OUT - (start / RATE + 1.5)) < 0.005


def test_a_jump_resets_the_timeline() -> None:
    transcoder = AacTranscoder(g711_track(0, Codec.PCMU))
    part1 = g711_frames(Codec.PCMU, tone(0.5, RATE), 8000)
    later = 8000 + 10 * RATE  # a reconnect ten seconds later
    part2 = g711_frames(Codec.PCMU, [0] * 800 + tone(0.5, RATE), later)
    out, _ = run(transcoder, part1 + part2)
    assert transcoder.resets == 1
    pts = [f.pts for f in out]
    assert pts == sorted(set(pts))
    resumed = next(i for i, f in enumerate(out) if f.pts >= later * 6 - 1024)
    assert out[resumed].pts == later * 6 - 1024  # a new encoder, primed again
    first, left = decode(out[resumed:])
    onset, _ = loud(left)
    assert abs((first + onset) / OUT - (later + 800) / RATE) < 0.005


def test_overlap_is_trimmed() -> None:
    transcoder = AacTranscoder(g711_track(0, Codec.PCMA))
    frames = g711_frames(Codec.PCMA, tone(0.2, RATE), 0)
    early = frames[5].pts - 40  # 40 samples early
    frames[5] = replace(frames[5], pts=early, dts=early)
    out, _ = run(transcoder, frames)
    assert transcoder.trimmed == 40 and transcoder.filled == 40
    assert [b.pts - a.pts for a, b in zip(out, out[1:])] == [1024] * (len(out) - 1)


def test_flush_then_push_starts_again() -> None:
    transcoder = AacTranscoder(g711_track(0, Codec.PCMA))
    out1, _ = run(transcoder, g711_frames(Codec.PCMA, tone(0.1, RATE), 0))
    out2, _ = run(transcoder, g711_frames(Codec.PCMA, tone(0.1, RATE), 800))
    assert out2[0].pts > out1[-1].pts and transcoder.resets == 0
    decode(out2)


def test_aac_source_44k_mono_to_48k_stereo_in_sync() -> None:
    rate = 44100
    samples = [0] * (rate // 5) + tone(0.5, rate)
    packets = pyav_encode("aac", samples, rate)
    enc_config = _aac_config(rate)
    source = Track(2, Codec.AAC, rate, audio_config=enc_config, sample_rate=rate, channels=1)
    base = 10 * rate
    frames = [Frame(source, base + p.pts, base + p.pts, True, bytes(p)) for p in packets]
    transcoder = AacTranscoder(source)
    out, _ = run(transcoder, frames)
    assert transcoder.track.index == 2 and transcoder.errors == 0
    first, left = decode(out)
    onset, _ = loud(left)
    assert abs((first + onset) / OUT - (base / rate + 0.2)) < 0.005


def _aac_config(rate: int) -> bytes:
    enc = av.CodecContext.create("aac", "w")
    enc.sample_rate, enc.layout, enc.format = rate, "mono", "fltp"
    enc.open()
    return bytes(enc.extradata)


def test_corrupt_input_is_counted_and_filled() -> None:
    source = Track(0, Codec.AAC, OUT, audio_config=_aac_config(OUT), sample_rate=OUT, channels=1)
    transcoder = AacTranscoder(source)
    assert transcoder.push(Frame(source, 0, 0, True, b"\xff" * 40)) == []
    assert transcoder.errors == 1


@pytest.mark.parametrize(
    "track",
    [Track(0, Codec.H264, 90000), Track(0, "no_such_codec", 8000)],  # type: ignore[arg-type]
)
def test_unsupported_source(track: Track) -> None:
    with pytest.raises(UnsupportedError):
        AacTranscoder(track)


def test_unsupported_output() -> None:
    with pytest.raises(UnsupportedError):
        AacTranscoder(g711_track(0, Codec.PCMA), sample_rate=12345)
    with pytest.raises(UnsupportedError):
        AacTranscoder(g711_track(0, Codec.PCMA), channels=6)


@settings(max_examples=15, deadline=None)
@given(drops=st.sets(st.integers(1, 48), max_size=12), start=st.integers(0, 2**33))
def test_any_loss_keeps_a_continuous_timeline(drops: set[int], start: int) -> None:
    frames = g711_frames(Codec.PCMU, tone(1.0, RATE), start, drop=drops)
    transcoder = AacTranscoder(g711_track(0, Codec.PCMU), channels=1)
    out, _ = run(transcoder, frames)
    assert [b.pts - a.pts for a, b in zip(out, out[1:])] == [1024] * (len(out) - 1)
    begin = start * 6  # input start in output samples; priming before 0 is dropped
    assert out[0].pts == (begin - 1024 if begin >= 1024 else begin)
    assert abs(out[-1].pts + 1024 - (begin + OUT)) <= 1024
    assert transcoder.filled == 160 * len(drops)


def test_silent_aac_frames_follow_the_timeline() -> None:
    silent = SilentAac(4)
    track = silent.track
    assert (track.index, track.codec, track.clock_rate, track.channels) == (4, Codec.AAC, OUT, 2)
    assert track.audio_config[:2] == bytes.fromhex("1190")
    first = silent.frames_until(2.0)
    assert [f.pts for f in first] == [96000]
    more = silent.frames_until(2.1)
    assert [f.pts for f in more] == [96000 + 1024 * k for k in range(1, 5)]
    assert silent.frames_until(2.1) == []
    frames = first + more + silent.frames_until(3.0)
    assert [b.pts - a.pts for a, b in zip(frames, frames[1:])] == [1024] * (len(frames) - 1)
    assert frames[-1].pts <= 3.0 * OUT < frames[-1].pts + 1024
    assert len({f.data for f in frames}) == 1 and len(frames[0].data) < 16
    _, left = decode(frames)
    assert len(left) == 1024 * len(frames) and max(map(abs, left)) == 0.0


@pytest.mark.parametrize("rate, channels", [(44100, 1), (48000, 1), (44100, 2)])
def test_silent_aac_other_layouts_decode_to_silence(rate: int, channels: int) -> None:
    silent = SilentAac(0, rate, channels, start=1.0)
    frames = silent.frames_until(1.5)
    assert frames[0].pts == rate and len(frames) == 1 + int(0.5 * rate) // 1024
    dec = av.CodecContext.create("aac", "r")
    dec.extradata = silent.track.audio_config
    decoded = [a for f in frames for a in dec.decode(av.Packet(f.data))]
    assert all(a.sample_rate == rate and len(a.layout.channels) == channels for a in decoded)
    assert all(set(bytes(a.planes[0])[: a.samples * 4]) <= {0} for a in decoded)


@pytest.mark.parametrize("back", [None, 1.5])
def test_a_restart_never_overlaps_what_was_sent(back: float | None) -> None:
    """After a flush (``None``), or input that went back over a second (a caller without the
    stream's timeline), the new encoder's frames follow the last one sent a whole frame at a
    time: none overlapping, or a tick after, the one before, which players cannot place."""
    transcoder = AacTranscoder(g711_track(0, Codec.PCMA))
    out = [f for frame in g711_frames(Codec.PCMA, tone(0.1, RATE), 3 * RATE)
           for f in transcoder.push(frame)]
    if back is None:
        out += transcoder.flush()
    resume = 3 * RATE + 800 - round((back or 0) * RATE)
    out += run(transcoder, g711_frames(Codec.PCMA, tone(2.0, RATE), resume))[0]
    steps = [b.pts - a.pts for a, b in zip(out, out[1:])]
    assert min(steps) >= 1024, steps

"""The bus: fan-out, GOP cache, drop-to-next-keyframe for a slow subscriber."""

import trio

from relay.bus import KEYFRAME_WAIT_SECONDS, Stream
from relay.media import Codec, Frame, Track

VIDEO = Track(index=0, codec=Codec.H264, clock_rate=90000)
AUDIO = Track(index=1, codec=Codec.AAC, clock_rate=48000)


def video(n: int, key: bool = False) -> Frame:
    return Frame(VIDEO, pts=n * 3600, dts=n * 3600, key=key, data=bytes([n % 256]) * 10)


def audio(n: int) -> Frame:
    return Frame(AUDIO, pts=n * 1024, dts=n * 1024, key=True, data=b"a")


def drain(sub) -> list[Frame]:
    out = []
    while True:
        try:
            out.append(sub._receive.receive_nowait())
        except trio.WouldBlock:
            return out


def test_new_subscriber_starts_from_gop_cache() -> None:
    stream = Stream("cam")
    stream.set_tracks([VIDEO, AUDIO])
    stream.publish(video(0))  # before any keyframe: not cached
    stream.publish(video(1, key=True))
    stream.publish(audio(1))
    stream.publish(video(2))
    with stream.subscribe() as sub:
        got = drain(sub)
    assert [f.pts for f in got] == [3600, 1024, 7200]
    assert got[0].key


def test_subscriber_waits_for_video_keyframe() -> None:
    stream = Stream("cam")
    stream.set_tracks([VIDEO, AUDIO])
    with stream.subscribe() as sub:
        stream.publish(audio(0))
        stream.publish(video(1))
        stream.publish(video(2, key=True))
        stream.publish(audio(3))
        got = drain(sub)
    assert [(f.track.index, f.pts) for f in got] == [(0, 7200), (1, 3072)]
    assert sub.dropped == 2


def test_audio_only_stream_starts_at_once() -> None:
    stream = Stream("radio")
    stream.set_tracks([AUDIO])
    with stream.subscribe() as sub:
        stream.publish(audio(0))
        assert [f.pts for f in drain(sub)] == [0]


def test_slow_subscriber_drops_to_next_keyframe_and_is_told() -> None:
    stream = Stream("cam")
    stream.set_tracks([VIDEO])
    with stream.subscribe(max_frames=3) as slow, stream.subscribe(max_frames=100) as fast:
        stream.publish(video(0, key=True))
        for n in range(1, 6):
            stream.publish(video(n))
        got_slow = drain(slow)  # the slow consumer catches up only now
        stream.publish(video(6, key=True))
        stream.publish(video(7))
        got_slow += drain(slow)
        got_fast = drain(fast)
    assert [f.pts // 3600 for f in got_slow] == [0, 1, 2, 6, 7]
    assert [f.discontinuity for f in got_slow] == [False, False, False, True, False]
    assert slow.dropped == 3
    assert len(got_fast) == 8 and not any(f.discontinuity for f in got_fast)
    # the flag went on a copy: the shared frame the fast subscriber saw is untouched
    assert got_fast[6] is not got_slow[3]


def test_falling_behind_is_one_log_line_per_outage_and_counted(caplog) -> None:
    stream = Stream("cam")
    stream.set_tracks([VIDEO])
    with stream.subscribe(max_frames=2, name="hls") as slow:
        stream.publish(video(0))  # before the first keyframe: not a fall behind
        for outage in range(2):
            first = 1 + 50 * outage
            stream.publish(video(first, key=True))
            for n in range(first + 1, first + 40):  # the queue holds 2: 38 lost
                stream.publish(video(n))
            drain(slow)
            stream.publish(video(first + 40, key=True))
            drain(slow)
        stream.publish(video(200))
        for n in range(201, 206):  # 4 lost, then the subscriber goes away behind
            stream.publish(video(n))
    lines = [r.getMessage() for r in caplog.records if "fell behind" in r.getMessage()]
    assert lines == [
        "stream=cam subscriber=hls fell behind: lost 38 frames; resumed at a keyframe",
        "stream=cam subscriber=hls fell behind: lost 38 frames; resumed at a keyframe",
        "stream=cam subscriber=hls fell behind: lost 4 frames; closed before the next keyframe",
    ]
    statistics = stream.statistics()
    assert statistics.subscriber_drops == 80 and slow.dropped == 81
    assert statistics.subscribers == 0 and statistics.frames_in == 89


async def test_close_ends_iteration() -> None:
    stream = Stream("cam")
    stream.set_tracks([AUDIO])
    received = []
    async with trio.open_nursery() as nursery:
        sub = stream.subscribe()

        async def consume() -> None:
            with sub:
                async for frame in sub:
                    received.append(frame.pts)

        nursery.start_soon(consume)
        stream.publish(audio(0))
        stream.publish(audio(1))
        stream.close()
    assert received == [0, 1024]


def test_gop_cache_bounded_in_bytes(caplog) -> None:
    """Large frames: a GOP over the byte bound is not cached, counted, logged once per run."""
    big = bytes(1024 * 1024)
    stream = Stream("cam")
    stream.set_tracks([VIDEO])

    def gop(first: int, frames: int, data: bytes) -> None:
        for n in range(first, first + frames):
            stream.publish(Frame(VIDEO, n * 3600, n * 3600, n == first, data))

    gop(0, 65, big)  # 65 MiB: over GOP_CACHE_MAX_BYTES (64 MiB), far under 1500 frames
    assert stream.statistics().gop_cache_bytes == 0
    with stream.subscribe() as sub:
        assert drain(sub) == []  # it waits for the next keyframe instead
    gop(65, 65, big)
    assert stream.gop_cache_overflows == 2
    assert len([r for r in caplog.records if "GOP cache" in r.getMessage()]) == 1
    gop(130, 10, big)  # fits: cached again
    with stream.subscribe() as sub:
        assert [f.pts // 3600 for f in drain(sub)] == list(range(130, 140))
    gop(140, 65, big)  # a new run of overflows: one more line
    assert len([r for r in caplog.records if "GOP cache" in r.getMessage()]) == 2
    assert "cam" in caplog.records[-1].getMessage()


def test_gop_cache_byte_bound_is_per_stream() -> None:
    stream = Stream("cam", gop_cache_bytes=25)
    stream.set_tracks([VIDEO])
    stream.publish(video(0, key=True))
    stream.publish(video(1))
    with stream.subscribe() as sub:
        assert len(drain(sub)) == 2
    stream.publish(video(2))  # 30 bytes: over
    assert stream.gop_cache_overflows == 1
    with stream.subscribe() as sub:
        assert drain(sub) == []


def test_stream_without_keyframes_reaches_new_and_slow_subscribers() -> None:
    """No keyframe ever: a subscriber starts, or resumes, after KEYFRAME_WAIT_SECONDS of video."""
    stream = Stream("cam")
    stream.set_tracks([VIDEO, AUDIO])
    wait = int(KEYFRAME_WAIT_SECONDS * 25)  # video() frames are 25 per second
    with stream.subscribe(max_frames=2 * wait) as sub:
        for n in range(wait + 2):
            stream.publish(video(n))
            stream.publish(audio(n))
        got = drain(sub)
        assert [f.pts // 3600 for f in got if f.track is VIDEO] == [wait, wait + 1]
        assert not got[0].discontinuity
        for n in range(wait + 2, 3 * wait + 4):  # it falls behind: its queue overflows
            stream.publish(video(n))
        queued = drain(sub)
        for n in range(3 * wait + 4, 5 * wait):
            stream.publish(video(n))
        got = drain(sub)
    assert [f.pts // 3600 for f in queued] == list(range(wait + 2, 3 * wait + 2))
    assert not any(f.discontinuity for f in queued)
    # one frame lost to the full queue; the next starts the wait, which lasts `wait` frames
    assert [f.pts // 3600 for f in got] == list(range(4 * wait + 3, 5 * wait))
    assert got[0].discontinuity

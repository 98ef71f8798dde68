"""The stream timeline: anchoring, wrap, sender-report alignment, clock jumps, reconnects."""

from relay.rtp.sync import Timeline

VIDEO, AUDIO = 0, 1


def make() -> Timeline:
    timeline = Timeline(reference=VIDEO)
    timeline.add_track(VIDEO, 90000)
    timeline.add_track(AUDIO, 48000)
    return timeline


def test_first_packet_anchors_at_arrival_and_follows_rtp() -> None:
    timeline = make()
    assert timeline.place(VIDEO, 123456, now=2.0) == 180000
    assert timeline.place(VIDEO, 123456 + 3600, now=2.04) == 183600


def test_wrap_of_the_32_bit_timestamp() -> None:
    timeline = make()
    start = 2**32 - 1800
    first = timeline.place(VIDEO, start, now=0.0)
    assert timeline.place(VIDEO, (start + 3600) % 2**32, now=0.04) == first + 3600


def test_sender_reports_align_audio_to_video() -> None:
    timeline = make()
    # audio's first packet arrives 300 ms late; the reports say both were captured together
    v0 = timeline.place(VIDEO, 1000, now=1.0)
    a0 = timeline.place(AUDIO, 5000, now=1.3)
    assert (a0 / 48000) - (v0 / 90000) > 0.29
    timeline.sender_report(VIDEO, 1000, ntp_seconds=100.0)
    timeline.sender_report(AUDIO, 5000, ntp_seconds=100.0)
    a1 = timeline.place(AUDIO, 5000 + 1024, now=1.33)
    assert abs((a1 - 1024) / 48000 - v0 / 90000) < 0.001
    assert timeline.realigned == 1


def test_small_misalignment_is_left_alone() -> None:
    timeline = make()
    timeline.place(VIDEO, 0, now=1.0)
    timeline.place(AUDIO, 0, now=1.01)
    timeline.sender_report(VIDEO, 0, ntp_seconds=50.0)
    timeline.sender_report(AUDIO, 0, ntp_seconds=50.0)
    assert timeline.realigned == 0


def test_clock_jump_is_restamped_not_followed() -> None:
    timeline = make()
    t0 = timeline.place(VIDEO, 0, now=1.0)
    # the DVR re-stamps by an hour between two frames 40 ms apart
    t1 = timeline.place(VIDEO, 3600 * 90000, now=1.04)
    assert timeline.restamped == 1
    assert 0 < t1 - t0 <= 3600 + 1
    assert timeline.place(VIDEO, 3600 * 90000 + 3600, now=1.08) == t1 + 3600


def test_decode_times_never_go_backwards() -> None:
    timeline = make()
    assert timeline.monotonic(VIDEO, 1000) == 1000
    assert timeline.monotonic(VIDEO, 900) == 1001
    assert timeline.clamped == 1


def test_reconnect_continues_the_timeline() -> None:
    timeline = make()
    timeline.monotonic(VIDEO, timeline.place(VIDEO, 777, now=5.0))
    timeline.reset()
    timeline.add_track(VIDEO, 90000)
    # a new session with a new random timestamp, 3 s later
    again = timeline.place(VIDEO, 2**31, now=8.0)
    assert again == 8 * 90000

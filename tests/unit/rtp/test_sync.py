"""The stream timeline: anchoring, wrap, sender-report alignment slewed (never stepped back),
clock jumps, reconnects; decode times strictly increasing whatever the source sends."""

from hypothesis import given
from hypothesis import strategies as st

from relay.rtp.sync import MAX_REALIGN, Timeline

VIDEO, AUDIO = 0, 1
VIDEO_STEP, AUDIO_STEP = 3600, 1024  # 25 fps at 90 kHz; AAC frames at 48 kHz
NTP = 3_900_000_000.0


def make() -> Timeline:
    timeline = Timeline(reference=VIDEO)
    timeline.add_track(VIDEO, 90000)
    timeline.add_track(AUDIO, 48000)
    return timeline


def camera(
    timeline: Timeline, seconds: float, audio_delay: float, report_at: float, start: float = 1.0
) -> dict[int, list[tuple[int, int]]]:
    """Video and audio captured together from ``start``, audio arriving ``audio_delay`` late,
    sender reports of both (same NTP instant for RTP 0) once ``report_at`` has passed. Returns
    each track's output (pts, dts) in arrival order."""
    events = [(start + n * VIDEO_STEP / 90000, VIDEO, n * VIDEO_STEP)
              for n in range(int(seconds * 25))]
    events += [(start + audio_delay + m * AUDIO_STEP / 48000, AUDIO, m * AUDIO_STEP)
               for m in range(int(seconds * 48000 / AUDIO_STEP))]
    out: dict[int, list[tuple[int, int]]] = {VIDEO: [], AUDIO: []}
    reported = False
    for arrival, index, rtp in sorted(events):
        if not reported and arrival >= report_at:
            timeline.sender_report(VIDEO, 0, NTP)
            timeline.sender_report(AUDIO, 0, NTP)
            reported = True
        source = timeline.place(index, rtp, arrival)
        out[index].append(timeline.stamp(index, source, source))
    return out


def test_first_packet_anchors_at_arrival_and_follows_rtp() -> None:
    timeline = make()
    assert timeline.place(VIDEO, 123456, now=2.0) == 180000
    assert timeline.place(VIDEO, 123456 + 3600, now=2.04) == 183600


def test_wrap_of_the_32_bit_timestamp() -> None:
    timeline = make()
    start = 2**32 - 1800
    first = timeline.place(VIDEO, start, now=0.0)
    assert timeline.place(VIDEO, (start + 3600) % 2**32, now=0.04) == first + 3600


def test_sender_reports_line_up_audio_that_arrived_late() -> None:
    timeline = make()
    out = camera(timeline, seconds=3.0, audio_delay=0.3, report_at=1.5)
    assert timeline.realigned == 1 and timeline.nudged == 0
    # once slewed, audio frame m sits where it was captured: with video frame 0 at 1.0 s
    for m, (pts, dts) in enumerate(out[AUDIO][-20:], start=len(out[AUDIO]) - 20):
        assert pts == dts == 48000 + m * AUDIO_STEP
    assert [dts for _, dts in out[VIDEO]] == [90000 + n * VIDEO_STEP for n in range(75)]


def _audio_steps(delay: float) -> tuple[list[int], list[int]]:
    """(audio decode-time steps, each frame's distance from where it belongs)."""
    out = camera(make(), seconds=3.0, audio_delay=delay, report_at=1.5)
    dts = [d for _, d in out[AUDIO]]
    belongs = [48000 + m * AUDIO_STEP for m in range(len(dts))]
    return [b - a for a, b in zip(dts, dts[1:])], [d - b for d, b in zip(dts, belongs)]


def test_a_300_ms_correction_back_is_slewed_over_a_few_frames() -> None:
    steps, errors = _audio_steps(0.300)
    # never back, never collapsed: each step keeps at least half a frame
    assert min(steps) >= AUDIO_STEP // 2, min(steps)
    slewing = [i for i, e in enumerate(errors) if e != 0 and abs(e) < 0.3 * 48000 - 1]
    # 300 ms of 48 kHz at half a frame per frame: 29 frames (0.6 s)
    assert 20 <= len(slewing) <= 30, slewing
    assert errors[-1] == 0
    assert all(b <= a for a, b in zip(errors, errors[1:])), errors  # only ever shrinks


def test_a_20_ms_correction_back_takes_two_frames() -> None:
    steps, errors = _audio_steps(0.020)
    assert min(steps) >= AUDIO_STEP // 2
    assert sorted(set(errors), reverse=True) == [960, 448, 0], errors  # 960 ticks = 20 ms
    assert errors[-1] == 0


def test_a_correction_forward_is_slewed_too() -> None:
    steps, errors = _audio_steps(-0.100)  # audio placed 100 ms early
    assert max(steps) <= AUDIO_STEP * 3 // 2 and min(steps) == AUDIO_STEP
    assert errors[-1] == 0


def test_small_misalignment_is_left_alone() -> None:
    timeline = make()
    camera(timeline, seconds=2.0, audio_delay=0.004, report_at=1.0)
    assert timeline.realigned == 0


def test_a_report_seconds_off_is_not_believed() -> None:
    timeline = make()
    timeline.place(VIDEO, 0, now=1.0)
    timeline.place(AUDIO, 0, now=1.0)
    timeline.sender_report(VIDEO, 0, NTP)
    timeline.sender_report(AUDIO, 0, NTP - 3600)
    assert timeline.disbelieved == 1 and timeline.realigned == 0
    assert timeline.stamp(AUDIO, 48000, 48000) == (48000, 48000)
    assert MAX_REALIGN < 3600


def test_clock_jump_is_restamped_not_followed() -> None:
    timeline = make()
    t0 = timeline.place(VIDEO, 0, now=1.0)
    # the DVR re-stamps by an hour between two frames 40 ms apart
    t1 = timeline.place(VIDEO, 3600 * 90000, now=1.04)
    assert timeline.restamped == 1
    assert t1 - t0 == 3600
    assert timeline.place(VIDEO, 3600 * 90000 + 3600, now=1.08) == t1 + 3600


def test_a_source_that_repeats_or_goes_back_is_moved_on_and_slewed_back() -> None:
    timeline = make()
    assert timeline.stamp(VIDEO, 1000, 1000) == (1000, 1000)
    pts, dts = timeline.stamp(VIDEO, 1000, 900)  # a B-frame order bug
    assert dts == 1090 and pts == 1190 and timeline.nudged == 1  # 1 ms on, pts kept ahead
    out = [timeline.stamp(VIDEO, 1000 + n * VIDEO_STEP, 1000 + n * VIDEO_STEP)[1]
           for n in range(1, 5)]
    assert out == [1000 + VIDEO_STEP, 1000 + 2 * VIDEO_STEP, 1000 + 3 * VIDEO_STEP,
                   1000 + 4 * VIDEO_STEP], out  # the offset of 190 was slewed away at once


def test_reconnect_continues_the_timeline() -> None:
    timeline = make()
    timeline.stamp(VIDEO, *[timeline.place(VIDEO, 777, now=5.0)] * 2)
    timeline.reset()
    timeline.add_track(VIDEO, 90000)
    # a new session with a new random timestamp, 3 s later
    again = timeline.place(VIDEO, 2**31, now=8.0)
    assert again == 8 * 90000
    assert timeline.stamp(VIDEO, again, again) == (again, again)


def test_reconnect_keeps_the_alignment_and_never_goes_back() -> None:
    timeline = make()
    first = camera(timeline, seconds=3.0, audio_delay=0.3, report_at=1.5)
    timeline.reset()
    timeline.add_track(VIDEO, 90000)
    timeline.add_track(AUDIO, 48000)
    # the camera is back at once (its first frames arrive 10 ms after the last ones), as late
    second = camera(timeline, seconds=2.0, audio_delay=0.3, report_at=10.0, start=4.01)
    for index in (VIDEO, AUDIO):
        dts = [d for _, d in first[index] + second[index]]
        assert all(b > a for a, b in zip(dts, dts[1:])), index
    # the audio offset carried over: audio lands where it was captured, no new report needed
    assert second[AUDIO][-1][1] == round(4.01 * 48000) + (len(second[AUDIO]) - 1) * AUDIO_STEP


def test_a_new_clock_rate_continues_after_the_last_decode_time() -> None:
    timeline = make()
    timeline.stamp(AUDIO, 48001, 48001)
    timeline.add_track(AUDIO, 8000)
    timeline.place(AUDIO, 0, now=0.5)
    _, dts = timeline.stamp(AUDIO, 4000, 4000)
    assert dts * 6 > 48001


@given(
    st.lists(
        st.tuples(
            st.integers(-50_000, 50_000),  # source DTS step, hostile: any sign
            st.integers(0, 2_000),  # pts - dts
            st.sampled_from([None, -0.5, -0.02, 0.0, 0.02, 0.5]),  # a report moves audio by
        ),
        max_size=200,
    )
)
def test_decode_times_strictly_increase_whatever_the_source_does(
    steps: list[tuple[int, int, float | None]],
) -> None:
    timeline = make()
    timeline.place(VIDEO, 0, now=0.0)
    timeline.place(AUDIO, 0, now=0.0)
    timeline.sender_report(VIDEO, 0, NTP)
    dts, last = 0, None
    for step, ahead, shift in steps:
        if shift is not None:
            timeline.sender_report(AUDIO, 0, NTP + shift)
        dts += step
        out_pts, out_dts = timeline.stamp(AUDIO, dts + ahead, dts)
        assert out_pts - out_dts == ahead
        if last is not None:
            assert out_dts >= last + 48  # MIN_STEP: FLV's millisecond
        last = out_dts

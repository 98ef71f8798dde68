"""``relay run --config`` as a new user runs it: several GStreamer cameras, one with a wrong
password, one unreachable, left unattended; then the file is edited and reloaded with SIGHUP."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from tests.interop.gstserver import free_port, start_gst_server
from tests.interop.hlscheck import check_playlist, check_segments
from tests.interop.relayproc import RelayProcess

SEGMENT = 2.0
USER, PASSWORD = "operator", "Wr0ng-or-right-7731"


def _config(http: int, hls: Path, streams: dict[str, str]) -> str:
    text = f'[server]\nhttp = "127.0.0.1:{http}"\nhls_dir = "{hls}"\nlog_format = "json"\n'
    for name, source in streams.items():
        # a long window, so a discontinuity could not slide out of sight during the test
        text += (f'\n[streams.{name}]\nsource = "{source}"\ntransport = "tcp"\n'
                 f"segment_seconds = {SEGMENT:g}\nwindow = 30\n")
    return text


def _playlist(hls: Path, name: str) -> str:
    path = hls / name / "index.m3u8"
    return path.read_text() if path.exists() else ""


def _by_name(relay: RelayProcess) -> dict[str, dict]:
    return {s["name"]: s for s in relay.api()}


def test_many_cameras_true_states_and_sighup_reload(tmp_path: Path) -> None:
    hls = tmp_path / "hls"
    http = free_port()
    nowhere = free_port()  # nothing listens here
    config = tmp_path / "relay.toml"
    # porch, added by the reload, gets a mount of its own: GStreamer re-prepares a shared
    # mount's pipeline for a newcomer, which can hold lobby's media for seconds; the relay then
    # rightly closes lobby's open segment after 2 s of silence (the likely cause of the one
    # 0.2 s segment seen in CI)
    with start_gst_server({"/cam": "h264aac", "/porch": "h264aac"}) as open_port, \
            start_gst_server({"/cam": "h264aac"}, user=USER, password=PASSWORD) as auth_port:
        good = f"rtsp://127.0.0.1:{open_port}/cam"
        first = {
            "lobby": good,
            "garage": good,  # several streams share one mount (and one encoder)
            "wrongpw": f"rtsp://{USER}:not-{PASSWORD}@127.0.0.1:{auth_port}/cam",
            "unreachable": f"rtsp://127.0.0.1:{nowhere}/cam",
        }
        config.write_text(_config(http, hls, first))
        # one media process: its reload is one log line (test_workers.py runs several)
        with RelayProcess(["run", "--config", str(config), "--workers", "1"], http,
                          tmp_path) as relay:
            def settled() -> bool:
                s = _by_name(relay)
                return (s["lobby"]["state"] == s["garage"]["state"] == "playing"
                        and s["wrongpw"]["state"] == "retrying"
                        and s["unreachable"]["state"] == "retrying"
                        and _playlist(hls, "lobby").count("#EXTINF") >= 2
                        and _playlist(hls, "garage").count("#EXTINF") >= 2)

            relay.wait_for(settled, 60, "two playing, two retrying, HLS from both good ones")
            streams = _by_name(relay)
            assert list(streams) == ["lobby", "garage", "wrongpw", "unreachable"]
            assert "password" in streams["wrongpw"]["last_error"].lower()
            assert "connection" in streams["unreachable"]["last_error"].lower()
            assert streams["lobby"]["last_error"] is None
            assert not (hls / "wrongpw").exists() or not _playlist(hls, "wrongpw").count("EXTINF")
            lobby_reconnects = streams["lobby"]["reconnects"]

            # Edit: garage removed, porch added, the others untouched. Then SIGHUP.
            second = ({k: v for k, v in first.items() if k != "garage"}
                      | {"porch": f"rtsp://127.0.0.1:{open_port}/porch"})
            config.write_text(_config(http, hls, second))
            before = _playlist(hls, "lobby").count("#EXTINF")
            relay.process.send_signal(signal.SIGHUP)

            relay.wait_for(lambda: "#EXT-X-ENDLIST" in _playlist(hls, "garage"), 20,
                           "the removed stream's playlist to end")
            relay.wait_for(lambda: _by_name(relay).get("porch", {}).get("state") == "playing"
                           and _playlist(hls, "porch").count("#EXTINF") >= 1, 40,
                           "the added stream to play and write HLS")
            relay.wait_for(lambda: _playlist(hls, "lobby").count("#EXTINF") >= before + 3, 30,
                           "the unchanged stream to keep writing")
            streams = _by_name(relay)
            assert list(streams) == ["lobby", "wrongpw", "unreachable", "porch"]
            assert streams["lobby"]["state"] == "playing"
            assert streams["lobby"]["reconnects"] == lobby_reconnects
            lobby = _playlist(hls, "lobby")
            assert "#EXT-X-DISCONTINUITY" not in lobby and "#EXT-X-ENDLIST" not in lobby

            # A file that no longer loads: one clear line, everything keeps running.
            config.write_text(_config(http, hls, second) + "\n[streams.bad]\nsource = 7\n")
            relay.process.send_signal(signal.SIGHUP)
            relay.wait_for(lambda: "reload failed" in relay.log(), 10, "the reload error")
            time.sleep(2 * SEGMENT)
            assert list(_by_name(relay)) == ["lobby", "wrongpw", "unreachable", "porch"]
            assert _by_name(relay)["lobby"]["state"] == "playing"
            assert relay.stop() == 0
            log = relay.log()

    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert lines, log
    failed = [e for e in lines if "reload failed" in e["msg"]]
    assert len(failed) == 1 and "streams.bad.source: expected an rtsp:// URL" in failed[0]["msg"]
    reloaded = [e["msg"] for e in lines if e["msg"].startswith("reloaded ")]
    assert len(reloaded) == 1
    assert "started porch" in reloaded[0] and "stopped garage" in reloaded[0]
    assert "unchanged lobby wrongpw unreachable" in reloaded[0]
    # the waits are visible, per stream
    assert any(e.get("stream") == "unreachable" and "retrying in" in e["msg"] for e in lines)
    assert any(e.get("stream") == "wrongpw" and "password" in e["msg"] for e in lines)
    assert PASSWORD not in log
    lobby = _playlist(hls, "lobby")
    assert "#EXT-X-DISCONTINUITY" not in lobby and "#EXT-X-ENDLIST" in lobby
    check_playlist(hls / "lobby" / "index.m3u8", SEGMENT)
    check_segments(hls / "lobby" / "index.m3u8", SEGMENT)
    check_segments(hls / "porch" / "index.m3u8", SEGMENT)

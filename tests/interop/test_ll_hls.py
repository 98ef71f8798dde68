"""LL-HLS from real cameras (GStreamer: H.264 with B-frames, H.265 + AAC) through
``relay pull --ll-hls always``: every listed part (init + part) and segment read by ffprobe, the
playlists parsed by m3u8 and held to RFC 8216bis; the files removed when the relay stops."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import m3u8
import pytest

from tests.interop.gstserver import free_port, start_gst_server
from tests.interop.relayproc import RelayProcess, http_get

PART = 0.2  # 5 frames of the GStreamer cameras' 25 fps: PART-TARGET is exactly this


def _msn(folder: Path) -> int:
    try:
        return int(json.loads((folder / "ll.json").read_text())["msn"])
    except FileNotFoundError:
        return -1


def _probe(path: Path, decode: bool) -> dict[str, list[dict[str, object]]]:
    count = "frames" if decode else "packets"
    result = subprocess.run(["ffprobe", "-v", "error", "-show_streams", f"-count_{count}",
                             "-of", "json", str(path)], capture_output=True, text=True,
                            timeout=60, check=True)
    # a part that does not start with a keyframe lacks its references: demuxed, not decoded
    assert result.stderr == "" or not decode, result.stderr
    info: dict[str, list[dict[str, object]]] = json.loads(result.stdout)
    assert info["streams"] and all(int(str(s[f"nb_read_{count}"])) > 0
                                   for s in info["streams"]), info
    return info


@pytest.mark.parametrize(("pipeline", "tag"), [("h264bframes", "avc1"), ("h265aac", "hvc1")])
def test_camera_to_ll_hls(tmp_path: Path, pipeline: str, tag: str) -> None:
    http = free_port()
    folder = tmp_path / "hls" / "cam"
    with start_gst_server({"/cam": pipeline}) as port, RelayProcess(
            ["pull", f"rtsp://127.0.0.1:{port}/cam", "--name", "cam", "--hls-dir",
             str(tmp_path / "hls"), "--http", f"127.0.0.1:{http}", "--transport", "tcp",
             "--ll-hls", "always", "--part-seconds", str(PART)], http, tmp_path) as relay:
        relay.wait_for(lambda: _msn(folder) >= 4, 60, "four LL-HLS segments")
        init = (folder / "init.mp4").read_bytes()
        text = (folder / "ll.m3u8").read_text()
        skip_text = (folder / "ll_skip.m3u8").read_text()
        playlist = m3u8.loads(text)
        # read every listed file at once: a part is deleted one segment after it is unlisted,
        # sooner than ffprobe gets through them all
        files = {uri: (folder / uri).read_bytes() for s in playlist.segments
                 for uri in [p.uri for p in s.parts] + ([s.uri] if s.uri else [])}
        target = playlist.target_duration
        assert playlist.version == 9 and playlist.segment_map[0].uri == "init.mp4"
        assert playlist.server_control.can_block_reload == "YES"
        assert playlist.server_control.part_hold_back >= 3 * PART - 1e-3
        assert playlist.part_inf.part_target == pytest.approx(PART, abs=1e-3)
        assert playlist.preload_hint.hint_type == "PART"
        m3u8.loads(skip_text)
        checked = 0
        for segment in playlist.segments:
            for i, part in enumerate(segment.parts):
                assert part.duration <= PART + 1e-3
                if part.independent != "YES" and (i + 1 < len(segment.parts) or not segment.uri):
                    assert part.duration >= 0.85 * PART  # 4.4.4.9: only these may be shorter
                path = tmp_path / part.uri
                path.write_bytes(init + files[part.uri])
                info = _probe(path, decode=part.independent == "YES")
                assert tag in {s["codec_tag_string"] for s in info["streams"]}
                checked += 1
            if segment.uri:
                assert round(segment.duration) <= target
                if segment.parts:
                    assert sum(p.duration for p in segment.parts) == pytest.approx(
                        segment.duration, abs=1e-3)
                    assert segment.parts[0].independent == "YES"
                path = tmp_path / segment.uri
                path.write_bytes(init + files[segment.uri])
                _probe(path, decode=True)
        assert checked >= 8
        assert relay.stop() == 0
    assert not (folder / "ll.json").exists()
    assert not list(folder.glob("*.m4s")) and not (folder / "ll.m3u8").exists()


def _answered_at(url: str) -> tuple[int, bytes, float]:
    with urllib.request.urlopen(url, timeout=15) as response:
        return response.status, response.read(), time.time()


def test_served_on_demand_with_blocking_reload(tmp_path: Path) -> None:
    """The web side: the first request starts the muxer (default on-demand), a blocking reload
    and the hinted part are held until written, and what a player fetches decodes."""
    http = free_port()
    folder = tmp_path / "hls" / "cam"
    with start_gst_server({"/cam": "h264aac"}) as port, RelayProcess(
            ["pull", f"rtsp://127.0.0.1:{port}/cam", "--name", "cam", "--hls-dir",
             str(tmp_path / "hls"), "--segment-seconds", "2", "--part-seconds", str(PART),
             "--http", f"127.0.0.1:{http}"], http, tmp_path) as relay:
        relay.wait_for(lambda: (folder / "index.m3u8").exists(), 45, "the standard playlist")
        relay.wait_for(lambda: [s["name"] for s in relay.api()] == ["cam"], 20,
                       "the web process, listing the stream")
        assert not (folder / "ll.json").exists()  # on demand: nobody asked yet
        base = f"http://127.0.0.1:{http}/hls/cam"
        status, body = http_get(f"{base}/ll.m3u8")  # starts the muxer, answered once it has
        assert status == 200, body
        hint = m3u8.loads(body.decode()).preload_hint
        assert hint is not None and hint.hint_type == "PART"
        msn, index = (int(n) for n in hint.uri[1:].removesuffix(".m4s").split("."))
        with ThreadPoolExecutor(2) as pool:
            held = pool.submit(_answered_at, f"{base}/ll.m3u8?_HLS_msn={msn}&_HLS_part={index}")
            hinted = pool.submit(_answered_at, f"{base}/{hint.uri}")
            status, body, arrived = held.result()
            part_status = hinted.result()[0]
        assert status == 200 and part_status == 200
        assert f'URI="{hint.uri}"' in body.decode()
        delay = arrived - (folder / hint.uri).stat().st_mtime
        print(f"LL-HLS: part written -> blocking playlist answered in {delay * 1000:.1f} ms")
        assert http_get(f"{base}/ll.m3u8?_HLS_msn={msn + 3}&_HLS_part=0")[0] == 400

        status, body = http_get(f"{base}/ll.m3u8?_HLS_msn={msn + 1}")  # a whole segment more
        assert status == 200
        segment = [s for s in m3u8.loads(body.decode()).segments if s.uri and s.parts][-1]
        parts = [http_get(f"{base}/{part.uri}") for part in segment.parts]
        assert all(part_status == 200 for part_status, _ in parts)
        whole_status, whole = http_get(f"{base}/{segment.uri}")
        assert whole_status == 200 and whole == b"".join(data for _, data in parts)
        init_status, init = http_get(f"{base}/init.mp4")
        assert init_status == 200
        media = tmp_path / "segment.mp4"
        media.write_bytes(init + whole)
        info = _probe(media, decode=True)
        assert {s["codec_name"] for s in info["streams"]} == {"h264", "aac"}
        delta_status, delta = http_get(f"{base}/ll.m3u8?_HLS_skip=YES")
        assert delta_status == 200 and delta.startswith(b"#EXTM3U")  # skips once long enough
        assert relay.stop() == 0
    assert not (folder / "ll.json").exists()

"""Serving benchmark: HLS requests per second from the relay's web process vs nginx, under load,
while the relay ingests N streams; checks that ingest loses no frame meanwhile.

    .venv/bin/python -m bench.serve [--n 16] [--connections 1000] [--seconds 15]
                                    [--ll-viewers 500] [--no-wrk]

The relay runs N streams (RTSP from bench/gst_source.py, RTMP to nginx, HLS to a folder); the
same folder is served by the relay's aiohttp process (``/hls/NAME/...``) and by nginx (one worker,
sendfile). wrk (Debian package ``wrk``) then drives, with ``--connections`` concurrent
connections on 2 threads, first the N playlists, then the N latest segments, against each
server in turn. Then ``--ll-viewers`` LL-HLS viewers (bench/ll_viewers.py, a
process of their own) make blocking playlist reloads and hinted part requests on the first
stream, as hls.js does; the delay from a part's write to its answer is reported. Ingest is
checked over the whole load period: every video frame that left the source must be in each
stream's nginx recording and in its listed HLS segments. Whether the LL viewers delay ingest is
measured side by side: a window of ``--seconds`` with no viewers, then the window of the
viewers, each with the RTMP delay of the first stream (source departure to arrival at an RTMP
player of nginx, per video frame), the frames delivered of those sent, and the relay's drops.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench import measure as m
from bench.clip import ensure_clip
from bench.ll_viewers import report as ll_report
from bench.peers import BenchError, start_nginx, start_reader, start_source, stop
from bench.run import SEGMENT_SECONDS, start_relay_under_test, stream_names, wait_published

LUA = """
local paths = {}
init = function(args) for i, p in ipairs(args) do paths[#paths + 1] = p end end
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
"""


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def wrk(base: str, paths: list[str], connections: int, seconds: float, script: Path) -> dict:
    """Run wrk; return requests/s, MB/s, latency p50/p99 (ms) and error counts."""
    if shutil.which("wrk") is None:
        raise BenchError("wrk is not installed (Debian package wrk)")
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{int(seconds)}s", "--latency", "--timeout", "10s",
         "-s", str(script), base, "--", *paths],
        capture_output=True, text=True, preexec_fn=_raise_nofile, check=False,
    ).stdout

    def number(pattern: str) -> float | None:
        found = re.search(pattern, out)
        return float(found.group(1)) if found else None

    def ms(label: str) -> float | None:
        found = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not found:
            return None
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]
        return float(found.group(1)) * scale

    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    mb = None
    if transfer:
        mb = float(transfer.group(1)) * {"B": 1e-6, "KB": 1e-3, "MB": 1.0, "GB": 1e3}.get(
            transfer.group(2), 1.0)
    return {
        "rps": number(r"Requests/sec:\s+([\d.]+)"),
        "mb_s": mb,
        "p50_ms": ms("50%"),
        "p99_ms": ms("99%"),
        "non_2xx": int(number(r"Non-2xx or 3xx responses:\s+(\d+)") or 0),
        "socket_errors": re.search(r"Socket errors:.*", out).group(0) if "Socket errors" in out
        else "none",
        "raw": out,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serve",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=16, help="streams ingested meanwhile")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=15.0, help="per wrk run")
    parser.add_argument("--ll-viewers", type=int, default=500,
                        help="blocking LL-HLS viewers of the first stream (0: none)")
    parser.add_argument("--no-wrk", action="store_true",
                        help="skip the wrk runs (only the LL viewers and their ingest windows)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    clip = ensure_clip()
    work = Path(tempfile.mkdtemp(prefix="bench-serve-", dir="/dev/shm"))
    hls_dir = work / "hls"
    hls_dir.mkdir()
    names = stream_names(args.n)
    source = start_source(clip, work)
    nginx = start_nginx(work, hls_dir, connections=args.connections * 2)
    procs: list[subprocess.Popen[bytes]] = []
    results: dict = {"n": args.n, "connections": args.connections}
    reader = start_reader({names[0]: nginx.rtmp_url(names[0])}, work)
    windows: dict[str, tuple[float, float]] = {}
    try:
        procs = start_relay_under_test("relay", "", args.n, source.url, nginx.rtmp_url, hls_dir,
                                       work)  # "": relay run's default --workers
        relay_http = procs[0].http_port  # type: ignore[attr-defined]
        wait_published([nginx.recording(name) for name in names], procs, work / "relay.log",
                       timeout=30 + args.n)
        time.sleep(2 * SEGMENT_SECONDS + 1)  # a few segments listed everywhere
        script = work / "paths.lua"
        script.write_text(LUA)
        playlists = [f"/hls/{name}/index.m3u8" for name in names]
        segments = []
        for name in names:
            listed = m.playlist_segments(hls_dir / name / "index.m3u8")
            if not listed:
                raise BenchError(f"stream {name} has no segment listed yet")
            segments.append(f"/hls/{name}/{listed[-1]}")
        api = f"http://127.0.0.1:{relay_http}/api/streams"

        def counters() -> dict | list:
            with urllib.request.urlopen(api, timeout=5) as response:
                return json.loads(response.read())  # type: ignore[no-any-return]

        before = counters()
        t0 = time.monotonic()
        load0 = Path("/proc/loadavg").read_text().split()[0]
        drops_at: dict[str, dict[str, int]] = {}
        if args.ll_viewers:
            print(f"bench: {args.seconds:.0f} s with no LL-HLS viewer", file=sys.stderr,
                  flush=True)
            drops_at["quiet"] = drops(counters())
            quiet0 = time.monotonic()
            time.sleep(args.seconds)
            windows["quiet"] = (quiet0, time.monotonic())
            drops_at["quiet"] = _since(drops_at["quiet"], drops(counters()))
        for server, port in () if args.no_wrk else (
                ("relay web (aiohttp)", relay_http), ("nginx", nginx.http_port)):
            for what, paths in (("playlists", playlists), ("segments", segments)):
                print(f"bench: wrk {args.connections} connections, {what} from {server}",
                      file=sys.stderr, flush=True)
                results[f"{server} {what}"] = wrk(f"http://127.0.0.1:{port}", paths,
                                                  args.connections, args.seconds, script)
        if args.ll_viewers:
            print(f"bench: {args.ll_viewers} blocking LL-HLS viewers of {names[0]}",
                  file=sys.stderr, flush=True)
            drops_at["ll"] = drops(counters())
            ll0 = time.monotonic()
            subprocess.run([sys.executable, "-m", "bench.ll_viewers", "--url",
                            f"http://127.0.0.1:{relay_http}", "--name", names[0],
                            "--folder", str(hls_dir / names[0]), "--viewers",
                            str(args.ll_viewers), "--seconds", str(args.seconds),
                            "--json", str(work / "ll.json")], check=False)
            windows["ll"] = (ll0, time.monotonic())
            drops_at["ll"] = _since(drops_at["ll"], drops(counters()))
            results["ll_hls"] = json.loads((work / "ll.json").read_text())
        t1 = time.monotonic()
        after = counters()
        time.sleep(SEGMENT_SECONDS + 0.5)
        for proc in procs:
            stop(proc, signal.SIGINT, timeout=20)
        stop(reader.proc)
        stop(source.proc)
        stop(nginx.proc, signal.SIGQUIT)
        dep = m.Departures.load(source.departures)
        for key, (w0, w1) in windows.items():
            sent = set(dep.in_window(w0, w1))
            delays = m.rtmp_latencies(reader.arrivals, dep, w0, w1)
            results[f"ingest_{key}"] = {
                "seconds": w1 - w0, "sent": len(sent),
                "rtmp_delivered": m.delivered_in_window(
                    m.flv_video_keys(nginx.recording(names[0])), dep, sent),
                "rtmp_ms": {"count": len(delays), "p50": m.pct(delays, 50),
                            "p95": m.pct(delays, 95), "max": m.pct(delays, 100)},
                "relay_drops": drops_at[key]}
        window = set(dep.in_window(t0, t1))
        rtmp = [m.delivered_in_window(m.flv_video_keys(nginx.recording(n)), dep, window)
                for n in names]
        hls = []
        for name in names:
            keys: list[str] = []
            playlist = hls_dir / name / "index.m3u8"
            for uri in m.playlist_segments(playlist):
                keys += m.ts_video_keys(playlist.parent / uri)
            hls.append(m.delivered_in_window(keys, dep, window))

        results["ingest"] = {
            "seconds": t1 - t0, "sent_per_stream": len(window),
            "rtmp_delivered": sum(rtmp), "hls_delivered": sum(hls),
            "expected": len(window) * len(names),
            "relay_drops_during_load": sum(_since(drops(before), drops(after)).values()),
            "load_at_start": load0,
        }
    finally:
        for proc in procs:
            stop(proc, signal.SIGINT, timeout=5)
        stop(reader.proc)
        stop(source.proc)
        stop(nginx.proc, signal.SIGQUIT)
        shutil.rmtree(work, ignore_errors=True)
    print(report(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    ingest = results["ingest"]
    lossless = (ingest["rtmp_delivered"] == ingest["hls_delivered"] == ingest["expected"])
    return 0 if lossless else 1


def drops(snapshot: dict | list) -> dict[str, int]:
    """Frames the relay dropped or lost, every stream and sink together, from /api/streams."""
    streams = snapshot["streams"] if isinstance(snapshot, dict) else snapshot
    return {"frames_dropped": sum(s.get("frames_dropped", 0) for s in streams),
            "packets_lost": sum(s.get("packets_lost", 0) for s in streams),
            "subscriber_drops": sum(s.get("subscriber_drops", 0) for s in streams),
            "rtmp_frames_dropped": sum(r.get("frames_dropped", 0) for s in streams
                                       for r in s.get("rtmp", []))}


def _since(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {key: after[key] - before[key] for key in after}


def report(results: dict) -> str:
    rows = [f"Serving while the relay ingests {results['n']} streams"]
    for key, r in results.items():
        if not isinstance(r, dict) or "rps" not in r:
            continue
        if len(rows) == 1:
            rows += ["", f"{results['connections']} concurrent connections (wrk, 2 threads):",
                     "", "| server | requests | req/s | MB/s | latency p50 / p99 ms | errors |",
                     "|---|---|---:|---:|---:|---|"]
        server, what = key.rsplit(" ", 1)
        errors = f"{r['non_2xx']} non-2xx; socket errors: {r['socket_errors']}"
        rows.append(f"| {server} | {what} | {r['rps'] or 0:.0f} | {r['mb_s'] or 0:.1f} | "
                    f"{r['p50_ms'] or 0:.1f} / {r['p99_ms'] or 0:.1f} | {errors} |")
    if "ll_hls" in results:
        rows += ["", ll_report(results["ll_hls"])]
    for key, label in (("ingest_quiet", "no LL viewer"),
                       ("ingest_ll", f"{results.get('ll_hls', {}).get('viewers')} LL viewers")):
        w = results.get(key)
        if w:
            d = w["rtmp_ms"]
            rows.append(f"Ingest with {label} ({w['seconds']:.0f} s): RTMP delay of the first "
                        f"stream p50 {d['p50'] or 0:.1f} ms, p95 {d['p95'] or 0:.1f} ms, max "
                        f"{d['max'] or 0:.1f} ms ({d['count']} frames); its RTMP frames "
                        f"{w['rtmp_delivered']}/{w['sent']}; relay drops (all streams): "
                        f"{w['relay_drops']}")
    i = results.get("ingest")
    if i:
        rows += ["", f"Ingest during the {i['seconds']:.0f} s of load (load average "
                 f"{i['load_at_start']} at start): RTMP {i['rtmp_delivered']}/{i['expected']}, "
                 f"HLS {i['hls_delivered']}/{i['expected']} video frames delivered/sent; relay "
                 f"counters: {i['relay_drops_during_load']} frames dropped or packets lost"]
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())

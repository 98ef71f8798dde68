// Relay's page: a wall of camera tiles from /api/streams (every 2 s) with thumbnails, paged to
// what the screen holds, filtered by name and state, cameras with problems first; a tile opens
// the live player in a dialog (Escape closes it): LL-HLS (/hls/NAME/ll.m3u8) when the stream has
// it, standard HLS otherwise, hls.js or Safari's own player, with the live delay shown.
// Nothing is loaded from elsewhere. With an API token the page is opened as /#token=TOKEN: the
// fragment never reaches a server; it is kept in sessionStorage and sent as a bearer header.
"use strict";

const REFRESH_MS = 2000;
const THUMBNAIL_MS = 5000;
const DELAY_MS = 500;                 // how often the shown delay is updated
const PROBE_WAIT_MS = 1500;           // for the LL-HLS probe, before standard HLS starts
const HISTORY_MS = 5 * 60 * 1000;     // kept, and the widest the chart spans
const MIN_SPAN_MS = 60 * 1000;        // the narrowest: a new stream's chart fills up over a minute
const TOKEN_KEY = "relay-token";
const HEVC_MIME = 'video/mp4; codecs="hvc1.1.6.L93.B0"';
const PROBLEM_STATES = new Set(["connecting", "retrying", "stopped"]);

const $ = (id) => document.getElementById(id);
const video = $("player");
const list = $("streams");
const errorLine = $("streams-error");
const nowPlaying = $("now-playing");
const viewer = $("viewer");
const delayLine = $("delay");
const modeLine = $("mode");
const nameFilter = $("name-filter");
const stateFilter = $("state-filter");

const token = takeToken();
const tiles = new Map();    // stream name -> tile {item, button, parts..., stream, history, last}
let order = [];             // the latest streams, in the API's order
let page = 0;
let current = null;         // name of the stream in the player
let hls = null;             // the hls.js instance, when one is used
let playSerial = 0;         // bumped by every stop (so every start): a late probe starts nothing
let delayTimer = null;
let skipped = false;        // the player skipped ahead to hls.js's target once since it started

function takeToken() {
  const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);  // off the screen
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

function authHeaders() {
  return token ? { Authorization: "Bearer " + token } : {};
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function rate(bits) {
  if (bits == null || !isFinite(bits)) return "–";
  if (bits >= 1e6) return (bits / 1e6).toFixed(2) + " Mb/s";
  return Math.round(bits / 1e3) + " kb/s";
}

const CODECS = { h264: "H.264", hevc: "H.265", aac: "AAC", pcm_alaw: "G.711 A-law",
                 pcm_mulaw: "G.711 µ-law" };

function describeTrack(t) {
  const parts = [CODECS[t.codec] || t.codec];
  if (t.kind === "video") {
    if (t.width && t.height) parts.push(t.width + "×" + t.height);
    if (t.fps != null) parts.push(t.fps.toFixed(1) + " fps");
  } else {
    if (t.sample_rate) parts.push(t.sample_rate / 1000 + " kHz");
    if (t.channels) parts.push(t.channels === 1 ? "mono" : t.channels + " ch");
  }
  return parts.join(" · ");
}

function lossText(s) {
  const lost = s.packets_lost || 0;
  const total = (s.packets_received || 0) + lost;
  if (!total) return "–";
  return (100 * lost / total).toFixed(2) + " % (" + lost + " lost)";
}

function videoTrack(s) {
  return (s.tracks || []).find((t) => t.kind === "video");
}

// What is wrong with a stream, in one line, or null: its source, an RTMP destination or the disk.
function problemOf(s) {
  if (PROBLEM_STATES.has(s.state)) return s.last_error || s.state;
  const rtmp = (s.rtmp || []).find((r) => r.state !== "publishing");
  if (rtmp) return "RTMP " + rtmp.state + (rtmp.last_error ? ": " + rtmp.last_error : "");
  return s.disk_error || null;
}

// ---- tiles -------------------------------------------------------------------------------

function makeTile(name) {
  const item = el("li");
  const button = el("button", "tile");
  button.type = "button";
  button.dataset.stream = name;
  const frame = el("span", "thumb");
  const img = el("img");
  img.alt = "";   // the button's label names the camera
  img.hidden = true;
  const placeholder = el("span", "thumb-empty", "no picture yet");
  const badge = el("span", "badge");
  const error = el("span", "tile-error");
  frame.append(img, placeholder, badge, error);
  const head = el("span", "tile-head");
  const state = el("span", "pill");
  const title = el("span", "name", name);
  title.title = name;   // shown whole on hover when the tile cuts it
  head.append(title, state);
  const info = el("span", "tile-info");
  const format = el("span");
  const bitrate = el("span");
  info.append(format, bitrate);
  button.append(frame, head, info);
  item.append(button);
  button.addEventListener("click", () => openPlayer(name));   // Enter and Space too: a button
  return { item, button, img, placeholder, badge, error, state, format, bitrate,
           stream: null, history: [], last: null, thumbUrl: null, thumbAt: 0 };
}

function updateTile(tile, s, now) {
  tile.stream = s;
  const problem = problemOf(s);
  tile.problem = problem;
  tile.button.classList.toggle("problem", problem !== null);
  tile.button.classList.toggle("selected", s.name === current);
  tile.button.setAttribute("aria-label", s.name + ", " + s.state +
    (problem && problem !== s.state ? ", " + problem : "") + ": open the live player");
  tile.state.className = "pill state-" + s.state;
  tile.state.textContent = s.state;
  const track = videoTrack(s);
  tile.format.textContent = track ? [CODECS[track.codec] || track.codec,
    track.height ? track.height + "p" : null,
    track.fps != null ? Math.round(track.fps) + " fps" : null].filter(Boolean).join(" · ") : "";
  const tracks = s.tracks || [];
  const bitrateIn = tracks.reduce((sum, t) => sum + (t.bitrate || 0), 0);
  tile.bitrate.textContent = tracks.length ? rate(bitrateIn) : "";
  tile.badge.textContent = !s.hls ? "no HLS" : s.hls_viewers ? s.hls_viewers + " watching" : "";
  tile.badge.hidden = !tile.badge.textContent;
  tile.error.textContent = problem || "";
  tile.error.title = problem || "";
  tile.error.hidden = !problem;
  tile.history.push({ t: now, bitrate: tracks.length ? bitrateIn : null,
                      fps: track && track.fps != null ? track.fps : null });
  while (tile.history.length && tile.history[0].t < now - HISTORY_MS) tile.history.shift();
}

async function refreshThumbnail(tile) {
  const s = tile.stream;
  tile.thumbAt = Date.now();
  if (!s.thumbnail) { showThumbnail(tile, null); return; }
  try {
    const url = s.thumbnail + "?t=" + Date.now();   // cache-busted
    const response = await fetch(url, { headers: authHeaders(), cache: "no-store" });
    if (!response.ok) { showThumbnail(tile, null); return; }
    showThumbnail(tile, URL.createObjectURL(await response.blob()));
  } catch (err) {
    // keep the last picture; the next refresh tries again
  }
}

function showThumbnail(tile, objectUrl) {
  if (tile.thumbUrl) URL.revokeObjectURL(tile.thumbUrl);
  tile.thumbUrl = objectUrl;
  tile.img.hidden = !objectUrl;
  tile.placeholder.hidden = !!objectUrl;
  if (objectUrl) tile.img.src = objectUrl;
  else tile.img.removeAttribute("src");
}

// ---- the wall: filter, problems first, pages the size of the screen -------------------------

function matches(tile, text, state) {
  const s = tile.stream;
  if (text && !s.name.toLowerCase().includes(text)) return false;
  if (state === "all") return true;
  if (state === "problem") return tile.problem !== null;
  return s.state === state;
}

// Tiles that fit the screen below the header: whole rows of the grid's columns, at least two.
function pageSize() {
  const style = getComputedStyle(list);
  const columns = style.gridTemplateColumns.split(" ").length;
  const sample = list.firstElementChild;
  const height = sample ? sample.getBoundingClientRect().height : 0;
  if (!height) return columns * 4;
  const gap = parseFloat(style.rowGap) || 0;
  const room = window.innerHeight - list.getBoundingClientRect().top - 12;
  return columns * Math.max(2, Math.floor((room + gap) / (height + gap)));
}

function layout() {
  const empty = !list.firstElementChild;
  const text = nameFilter.value.trim().toLowerCase();
  const state = stateFilter.value;
  const shown = order.map((s) => tiles.get(s.name)).filter((t) => matches(t, text, state));
  shown.sort((a, b) => (a.problem === null) - (b.problem === null));   // stable: API order kept
  const size = pageSize();
  const pages = Math.max(1, Math.ceil(shown.length / size));
  page = Math.min(page, pages - 1);
  const visible = shown.slice(page * size, (page + 1) * size);
  // Move, never rebuild: a focused tile keeps its focus across refreshes.
  visible.forEach((tile, i) => {
    if (list.children[i] !== tile.item) list.insertBefore(tile.item, list.children[i] || null);
  });
  while (list.children.length > visible.length) list.lastElementChild.remove();
  if (empty && visible.length) { layout(); return; }   // now a tile can be measured
  // The relay decodes a thumbnail only when asked: none while nobody sees the wall.
  const now = Date.now();
  for (const tile of document.hidden || viewer.open ? [] : visible) {
    if (!tile.thumbUrl || now - tile.thumbAt >= THUMBNAIL_MS) refreshThumbnail(tile);
  }
  $("page-info").textContent = shown.length
    ? (page * size + 1) + "–" + (page * size + visible.length) + " of " + shown.length : "";
  $("page-prev").disabled = page === 0;
  $("page-next").disabled = page >= pages - 1;
  $("wall-empty").hidden = shown.length > 0 || order.length === 0;
}

function render(streams) {
  const now = Date.now();
  const seen = new Set();
  for (const s of streams) {
    seen.add(s.name);
    let tile = tiles.get(s.name);
    if (!tile) {
      tile = makeTile(s.name);
      tiles.set(s.name, tile);
    }
    updateTile(tile, s, now);
  }
  for (const [name, tile] of tiles) {
    if (seen.has(name)) continue;
    showThumbnail(tile, null);
    tile.item.remove();
    tiles.delete(name);
  }
  order = streams;
  const playing = streams.filter((s) => s.state === "playing").length;
  const problems = [...tiles.values()].filter((t) => t.problem !== null).length;
  $("summary").textContent = streams.length + " camera" + (streams.length === 1 ? "" : "s") +
    ", " + playing + " playing" + (problems ? ", " + problems + " with problems" : "");
  stateFilter.options[1].textContent = "with problems (" + problems + ")";
  choose(streams);   // before the wall's layout: a player opened now asks for no thumbnail
  // While the player covers the wall it is laid out once (no thumbnails), not at each refresh;
  // closing the player lays it out again.
  if (!viewer.open || !list.firstElementChild) layout();
  if (current !== null && tiles.has(current)) showDetails(tiles.get(current), now);
}

nameFilter.addEventListener("input", () => { page = 0; layout(); });
stateFilter.addEventListener("change", () => { page = 0; layout(); });
$("page-prev").addEventListener("click", () => { page -= 1; layout(); });
$("page-next").addEventListener("click", () => { page += 1; layout(); });
window.addEventListener("resize", layout);
document.addEventListener("visibilitychange", layout);

// ---- the player's details: facts, RTMP destinations, bitrate/fps chart ---------------------

function showDetails(tile, now) {
  const s = tile.stream;
  $("viewer-title").textContent = s.name;
  $("viewer-state").className = "pill state-" + s.state;
  $("viewer-state").textContent = s.state;
  const tracks = s.tracks || [];
  const audio = tracks.find((t) => t.kind === "audio");
  const track = videoTrack(s);
  const bitrateIn = tracks.reduce((sum, t) => sum + (t.bitrate || 0), 0);
  // Out: from the counters' change since the previous poll.
  const rtmpBytes = (s.rtmp || []).reduce((sum, r) => sum + (r.bytes_sent || 0), 0);
  const hlsBytes = s.hls_bytes_served || 0;
  let out = null;
  if (tile.last) {
    const dt = (now - tile.last.now) / 1000;
    const parts = [];
    if ((s.rtmp || []).length) parts.push("RTMP " + rate(8 * Math.max(0, rtmpBytes - tile.last.rtmp) / dt));
    if (s.hls) parts.push("HLS " + rate(8 * Math.max(0, hlsBytes - tile.last.hls) / dt));
    out = parts.join(" · ") || null;
  }
  tile.last = { now, rtmp: rtmpBytes, hls: hlsBytes };
  const push = s.hls_push;
  const facts = [
    ["video", "Video", track ? describeTrack(track) : null],
    ["audio", "Audio", audio ? describeTrack(audio) : null],
    ["in", "In", tracks.length ? rate(bitrateIn) : null],
    ["out", "Out", out],
    ["loss", "Loss", lossText(s)],
    ["viewers", "Watching", s.hls ? String(s.hls_viewers || 0) : null],
    ["push", "HLS push", push ? push.state + (push.last_error ? ": " + push.last_error : "") +
                         (push.latency_ms != null ? " (" + push.latency_ms + " ms)" : "") : null],
  ];
  const dl = $("facts");
  dl.replaceChildren();
  for (const [key, label, text] of facts) {
    if (text == null) continue;
    const dd = el("dd", "", text);
    dd.dataset.fact = key;
    dl.append(el("dt", "", label), dd);
  }
  const rtmp = $("rtmp");
  rtmp.replaceChildren();
  for (const r of s.rtmp || []) {
    const line = el("li");
    line.append(el("span", "pill state-" + r.state, r.state), el("span", "dest", r.destination));
    if (r.last_error) line.append(el("div", "rtmp-error", r.last_error));
    rtmp.append(line);
  }
  const problem = $("viewer-error");
  problem.textContent = tile.problem || "";
  problem.hidden = !tile.problem;
  const chart = $("chart");
  chart.setAttribute("aria-label", "bitrate and frame rate of " + s.name);
  drawChart(chart, tile.history, now);
}

function niceMax(value) {
  if (!(value > 0)) return 1;
  const step = Math.pow(10, Math.floor(Math.log10(value)));
  for (const m of [1, 2, 5, 10]) if (value <= m * step) return m * step;
  return 10 * step;
}

// Bitrate (filled, left scale) and fps (line, right scale).
function drawChart(canvas, points, now) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 300;
  const height = canvas.clientHeight || 80;
  if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
  if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const left = 4, right = width - 4, top = 12, bottom = height - 4;
  ctx.strokeStyle = "#e5e9f0";
  ctx.lineWidth = 1;
  for (let i = 0; i <= 2; i++) {
    const y = Math.round(top + (bottom - top) * i / 2) + 0.5;
    ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(right, y); ctx.stroke();
  }
  const span = Math.min(HISTORY_MS, Math.max(MIN_SPAN_MS, points.length ? now - points[0].t : 0));
  const start = now - span;
  const x = (t) => left + (right - left) * (t - start) / span;
  const series = (key, max) => points.filter((p) => p[key] != null)
    .map((p) => [x(p.t), bottom - (bottom - top) * Math.min(1, p[key] / max)]);
  const maxBitrate = niceMax(Math.max(0, ...points.map((p) => p.bitrate || 0)));
  const maxFps = niceMax(Math.max(0, ...points.map((p) => p.fps || 0)));
  const bitrate = series("bitrate", maxBitrate);
  const fps = series("fps", maxFps);
  if (bitrate.length >= 2) {
    ctx.beginPath();
    ctx.moveTo(bitrate[0][0], bottom);
    for (const [px, py] of bitrate) ctx.lineTo(px, py);
    ctx.lineTo(bitrate[bitrate.length - 1][0], bottom);
    ctx.closePath();
    ctx.fillStyle = "rgba(37, 99, 235, 0.15)";
    ctx.fill();
    line(ctx, bitrate, "#2563eb");
  }
  if (fps.length >= 2) line(ctx, fps, "#ea580c");
  ctx.font = "10px system-ui, sans-serif";
  ctx.textBaseline = "top";
  ctx.fillStyle = "#2563eb";
  ctx.fillText(rate(maxBitrate), left, 0);
  ctx.fillStyle = "#ea580c";
  const fpsLabel = maxFps + " fps";
  ctx.fillText(fpsLabel, right - ctx.measureText(fpsLabel).width, 0);
  ctx.fillStyle = "#6a7382";
  const spanLabel = "last " + Math.round(span / 60000) + " min";
  ctx.fillText(spanLabel, (left + right - ctx.measureText(spanLabel).width) / 2, 0);
  canvas.dataset.points = String(Math.max(bitrate.length, fps.length));
  canvas.dataset.drawn = bitrate.length >= 2 || fps.length >= 2 ? "1" : "";
}

function line(ctx, pts, colour) {
  ctx.beginPath();
  pts.forEach(([px, py], i) => (i ? ctx.lineTo(px, py) : ctx.moveTo(px, py)));
  ctx.strokeStyle = colour;
  ctx.lineWidth = 1.5;
  ctx.stroke();
}

// ---- player ------------------------------------------------------------------------------

// hls.min.js is a deferred script before this one, so by now it has run or failed (a 404 when
// the relay's web/node_modules is not installed: then browsers with their own HLS player use it).
const useHlsJs = Boolean(window.Hls && window.Hls.isSupported());
const native = video.canPlayType("application/vnd.apple.mpegurl") !== "";
const HLS_JS_MISSING = "hls.js did not load (/static/hls.min.js is missing on the relay: run " +
  "`make web` there)";

// What the page says about its player, or null when hls.js plays.
function playerProblem() {
  if (useHlsJs) return null;
  if (window.Hls) return native ? null : "This browser cannot play HLS (no Media Source Extensions).";
  return native ? HLS_JS_MISSING + "; this browser's own HLS player is used instead."
    : "The player did not load: " + HLS_JS_MISSING + ", and this browser cannot play HLS " +
      "without it. Status and pictures still work.";
}

function canDecodeHevc() {
  const mse = window.MediaSource && MediaSource.isTypeSupported(HEVC_MIME);
  return Boolean(mse || video.canPlayType(HEVC_MIME) !== "");
}

function openPlayer(name) {
  const tile = tiles.get(name);
  if (!tile) return;
  const url = new URL(location.href);
  url.searchParams.set("stream", name);
  history.replaceState(null, "", url);
  current = name;
  for (const t of tiles.values()) t.button.classList.toggle("selected", t === tile);
  showDetails(tile, Date.now());
  if (!viewer.open) viewer.showModal();
  play(tile.stream);
}

viewer.addEventListener("close", () => {   // Escape, the close button, or a refused stream
  stopPlayer();
  const tile = tiles.get(current);
  current = null;
  const url = new URL(location.href);
  url.searchParams.delete("stream");
  history.replaceState(null, "", url);
  nowPlaying.textContent = "No stream selected: choose a camera on the wall.";
  layout();
  if (tile) {
    tile.button.classList.remove("selected");
    if (tile.item.isConnected) tile.button.focus();
  }
});
$("viewer-close").addEventListener("click", () => viewer.close());

function stopPlayer() {
  playSerial += 1;
  if (hls) { hls.destroy(); hls = null; }
  video.removeAttribute("src");
  video.load();
  clearInterval(delayTimer);
  delayTimer = null;
  delayLine.textContent = "";
  delayLine.removeAttribute("data-seconds");
  modeLine.textContent = "";
}

// The LL-HLS playlist when the stream has one: null at once when the API says its ll_hls mode
// is off (standard HLS starts without the probe's wait), else a GET of it that answers 200 (it
// also starts an on-demand muxer, which the web process waits for).
async function lowLatencyUrl(stream) {
  if (stream.ll_hls && stream.ll_hls.mode === "off") return null;
  const url = stream.hls.replace(/index\.m3u8$/, "ll.m3u8");
  try {
    const response = await fetch(url, { headers: authHeaders(), cache: "no-store" });
    return response.ok ? url : null;
  } catch (err) {
    return null;
  }
}

async function play(stream) {
  stopPlayer();
  const serial = playSerial;
  const problem = playerProblem();
  if (!useHlsJs && !native) { nowPlaying.textContent = problem; return; }
  if (!stream.hls) {
    nowPlaying.textContent = stream.name + " has no HLS output (hls = false in its configuration).";
    return;
  }
  const track = videoTrack(stream);
  if (track && track.codec === "hevc" && !canDecodeHevc()) {
    nowPlaying.textContent = stream.name + " sends H.265 (HEVC) video, which this browser " +
      "cannot decode. Safari plays it, and Chrome or Edge where the computer has a hardware " +
      "HEVC decoder. Its status and thumbnails still work here.";
    return;
  }
  nowPlaying.textContent = "Starting " + stream.name + "…";
  // Standard HLS plays meanwhile when the probe is slow (a relay without LL-HLS for this stream
  // answers 404 only after the web process has waited for its muxer); LL-HLS takes over later.
  const probe = lowLatencyUrl(stream);
  const early = await Promise.race([probe, new Promise((r) => setTimeout(r, PROBE_WAIT_MS))]);
  if (serial !== playSerial) return;
  if (early !== undefined) { start(stream, early || stream.hls, early !== null, problem); return; }
  start(stream, stream.hls, false, problem);
  const ll = await probe;
  if (ll === null || serial !== playSerial) return;
  stopPlayer();
  start(stream, ll, true, problem);
}

function start(stream, url, low, problem) {
  const mode = low ? "LL-HLS" : "HLS";
  modeLine.textContent = mode;
  nowPlaying.textContent = "Playing " + stream.name + " (" + mode + "). " + (problem || "");
  if (useHlsJs) {
    const player = hls = new window.Hls({
      lowLatencyMode: low,
      // hls.js joins at a segment's keyframe, up to a GOP behind PART-HOLD-BACK, and by default
      // never catches up: at up to 1.25x it does (bench/glass.py: median 1.7 -> 1.2 s, no stall)
      maxLiveSyncPlaybackRate: low ? 1.25 : 1,
      liveDurationInfinity: true,
      backBufferLength: 30,
      xhrSetup: (xhr) => { if (token) xhr.setRequestHeader("Authorization", "Bearer " + token); },
    });
    player.on(window.Hls.Events.ERROR, (_, data) => {
      if (!data.fatal || player !== hls) return;
      if (low && data.type === window.Hls.ErrorTypes.NETWORK_ERROR &&
          data.details.startsWith("manifest")) {
        stopPlayer();   // the LL playlist went away (stopped, or turned off): standard HLS
        start(stream, stream.hls, false, problem);
      } else if (data.type === window.Hls.ErrorTypes.NETWORK_ERROR) player.startLoad();
      else if (data.type === window.Hls.ErrorTypes.MEDIA_ERROR) player.recoverMediaError();
    });
    player.loadSource(url);
    player.attachMedia(video);
  } else {
    video.src = url;   // Safari (and recent Chromium) play HLS natively
  }
  video.play().catch(() => {});   // muted autoplay; a refusal leaves the controls
  skipped = false;
  delayTimer = setInterval(showDelay, DELAY_MS);
}

// How far behind live the picture is: now minus the shown frame's EXT-X-PROGRAM-DATE-TIME when
// the playlist carries it (the relay stamps it on arrival), else hls.js's distance from the
// playlist's live edge.
function showDelay() {
  let seconds = null;
  let basis = "";
  if (hls && hls.config.lowLatencyMode && catchUp(hls, video, skipped)) skipped = true;   // catchup.js
  if (hls) {
    const date = hls.playingDate;
    if (date) {
      seconds = (Date.now() - date.getTime()) / 1000;
      basis = "now minus the shown frame's time (EXT-X-PROGRAM-DATE-TIME)";
    } else if (hls.latency > 0) {
      seconds = hls.latency;
      basis = "distance from the playlist's live edge (hls.js)";
    }
  } else if (video.getStartDate) {
    const startDate = video.getStartDate().getTime();
    if (isFinite(startDate)) {
      seconds = (Date.now() - startDate) / 1000 - video.currentTime;
      basis = "now minus the shown frame's time (EXT-X-PROGRAM-DATE-TIME)";
    }
  }
  if (seconds === null || video.readyState < 2) return;
  delayLine.textContent = "delay " + seconds.toFixed(1) + " s";
  delayLine.title = basis;
  delayLine.dataset.seconds = seconds.toFixed(3);
}

async function refresh() {
  try {
    const response = await fetch("/api/streams", { headers: authHeaders(), cache: "no-store" });
    if (response.status === 401) {
      errorLine.hidden = false;
      errorLine.textContent = token
        ? "The relay refused this page's token: open the page as /#token=TOKEN with the right one."
        : "This relay needs an API token: open the page as /#token=TOKEN.";
      return;
    }
    const streams = await response.json();
    errorLine.hidden = response.ok;
    if (!response.ok) errorLine.textContent = "The relay has not published its status yet.";
    render(streams);
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (err) {
    errorLine.hidden = false;
    errorLine.textContent = "Cannot reach the relay: " + err;
  }
}

// The first time the wall fills: open ?stream=NAME, or the only stream there is (relay pull, demo).
let chosen = false;
function choose(streams) {
  if (chosen || !streams.length) return;
  chosen = true;
  const wanted = new URLSearchParams(location.search).get("stream");
  const name = wanted && tiles.has(wanted) ? wanted : streams.length === 1 ? streams[0].name : null;
  if (name !== null) openPlayer(name);
}

const problemAtStart = playerProblem();
if (problemAtStart) {
  nowPlaying.textContent = problemAtStart;
  $("player-problem").textContent = problemAtStart;
  $("player-problem").hidden = false;
}
refresh();
setInterval(refresh, REFRESH_MS);

// Relay's dashboard: a card per stream from /api/streams (every 2 s), a live thumbnail per card,
// a bitrate/fps chart from history kept here, and one HLS player (hls.js; Safari plays natively).
// Nothing is loaded from elsewhere. With an API token the page is opened as /#token=TOKEN: the
// fragment never reaches a server; it is kept in sessionStorage and sent as a bearer header.
"use strict";

const REFRESH_MS = 2000;
const THUMBNAIL_MS = 5000;
const HISTORY_MS = 5 * 60 * 1000;     // kept, and the widest the chart spans
const MIN_SPAN_MS = 60 * 1000;        // the narrowest: a new card's chart fills up over a minute
const TOKEN_KEY = "relay-token";

const video = document.getElementById("player");
const list = document.getElementById("streams");
const errorLine = document.getElementById("streams-error");
const nowPlaying = document.getElementById("now-playing");
const updated = document.getElementById("updated");
const summary = document.getElementById("summary");

const token = takeToken();
const cards = new Map();    // stream name -> card state {item, parts..., history, last}
let current = null;         // name of the stream playing
let hls = null;             // the hls.js instance, when one is used
let chosenByUser = new URLSearchParams(location.search).get("stream");

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

// ---- cards -------------------------------------------------------------------------------

function makeCard(name) {
  const item = el("li", "card");
  item.dataset.stream = name;
  item.tabIndex = 0;
  const head = el("div", "card-head");
  const title = el("span", "name", name);
  const state = el("span", "pill");
  head.append(title, state);
  const frame = el("div", "thumb");
  const img = el("img");
  img.alt = "latest picture of " + name;
  img.hidden = true;
  const placeholder = el("span", "thumb-empty", "no picture yet");
  const viewers = el("span", "badge");
  frame.append(img, placeholder, viewers);
  const facts = el("dl", "facts");
  const rows = {};
  for (const [key, label] of [["video", "Video"], ["audio", "Audio"], ["in", "In"],
                              ["out", "Out"], ["loss", "Loss"], ["push", "HLS push"]]) {
    const dt = el("dt", "", label);
    const dd = el("dd");
    dd.dataset.fact = key;
    facts.append(dt, dd);
    rows[key] = [dt, dd];
  }
  const rtmp = el("ul", "rtmp");
  const error = el("p", "card-error");
  const canvas = el("canvas", "chart");
  canvas.dataset.points = "0";
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", "bitrate and frame rate of " + name);
  const legend = el("div", "legend");
  legend.append(el("span", "key-bitrate", "bitrate"), el("span", "key-fps", "fps"));
  item.append(head, frame, facts, rtmp, error, canvas, legend);
  const open = () => {
    chosenByUser = name;
    const url = new URL(location.href);
    url.searchParams.set("stream", name);
    history.replaceState(null, "", url);
    const card = cards.get(name);
    if (card && card.stream) play(card.stream);
    video.scrollIntoView({ behavior: "smooth", block: "nearest" });
  };
  item.addEventListener("click", open);
  item.addEventListener("keydown", (e) => { if (e.key === "Enter") open(); });
  const card = { item, state, img, placeholder, viewers, rows, rtmp, error, canvas,
                 history: [], last: null, stream: null, thumbUrl: null, thumbAt: 0 };
  return card;
}

function updateCard(card, s, now) {
  card.stream = s;
  card.item.classList.toggle("selected", s.name === current);
  card.state.className = "pill state-" + s.state;
  card.state.textContent = s.state;
  const tracks = s.tracks || [];
  const videoTrack = tracks.find((t) => t.kind === "video");
  const audioTrack = tracks.find((t) => t.kind === "audio");
  setFact(card, "video", videoTrack ? describeTrack(videoTrack) : null);
  setFact(card, "audio", audioTrack ? describeTrack(audioTrack) : null);
  const bitrateIn = tracks.reduce((sum, t) => sum + (t.bitrate || 0), 0);
  setFact(card, "in", tracks.length ? rate(bitrateIn) : null);
  // Out: from the counters' change since the previous poll.
  const rtmpBytes = (s.rtmp || []).reduce((sum, r) => sum + (r.bytes_sent || 0), 0);
  const hlsBytes = s.hls_bytes_served || 0;
  let out = null;
  if (card.last) {
    const dt = (now - card.last.now) / 1000;
    const parts = [];
    if ((s.rtmp || []).length) parts.push("RTMP " + rate(8 * Math.max(0, rtmpBytes - card.last.rtmp) / dt));
    if (s.hls) parts.push("HLS " + rate(8 * Math.max(0, hlsBytes - card.last.hls) / dt));
    out = parts.join(" · ") || null;
  }
  setFact(card, "out", out);
  card.last = { now, rtmp: rtmpBytes, hls: hlsBytes };
  setFact(card, "loss", lossText(s));
  const push = s.hls_push;
  setFact(card, "push", push ? push.state + (push.last_error ? ": " + push.last_error : "") +
                               (push.latency_ms != null ? " (" + push.latency_ms + " ms)" : "")
                             : null);
  card.viewers.textContent = s.hls ? (s.hls_viewers || 0) + " watching" : "no HLS";
  card.rtmp.replaceChildren();
  for (const r of s.rtmp || []) {
    const line = el("li");
    line.append(el("span", "pill state-" + r.state, r.state), el("span", "dest", r.destination));
    if (r.last_error) line.append(el("div", "rtmp-error", r.last_error));
    card.rtmp.append(line);
  }
  card.error.textContent = s.last_error && s.state !== "playing" ? s.last_error : "";
  card.error.hidden = !card.error.textContent;
  card.history.push({ t: now, bitrate: tracks.length ? bitrateIn : null,
                      fps: videoTrack && videoTrack.fps != null ? videoTrack.fps : null });
  while (card.history.length && card.history[0].t < now - HISTORY_MS) card.history.shift();
  drawChart(card.canvas, card.history, now);
  if (now - card.thumbAt >= THUMBNAIL_MS || !card.thumbUrl) {
    card.thumbAt = now;
    refreshThumbnail(card, s);
  }
}

function setFact(card, key, text) {
  const [dt, dd] = card.rows[key];
  dt.hidden = dd.hidden = text == null;
  dd.textContent = text == null ? "" : text;
}

async function refreshThumbnail(card, s) {
  if (!s.thumbnail) { showThumbnail(card, null); return; }
  try {
    const url = s.thumbnail + "?t=" + Date.now();   // cache-busted
    const response = await fetch(url, { headers: authHeaders(), cache: "no-store" });
    if (!response.ok) { showThumbnail(card, null); return; }
    showThumbnail(card, URL.createObjectURL(await response.blob()));
  } catch (err) {
    // keep the last picture; the next refresh tries again
  }
}

function showThumbnail(card, objectUrl) {
  if (card.thumbUrl) URL.revokeObjectURL(card.thumbUrl);
  card.thumbUrl = objectUrl;
  card.img.hidden = !objectUrl;
  card.placeholder.hidden = !!objectUrl;
  if (objectUrl) card.img.src = objectUrl;
  else card.img.removeAttribute("src");
}

// ---- chart: bitrate (filled, left scale) and fps (line, right scale) ------------------------

function niceMax(value) {
  if (!(value > 0)) return 1;
  const step = Math.pow(10, Math.floor(Math.log10(value)));
  for (const m of [1, 2, 5, 10]) if (value <= m * step) return m * step;
  return 10 * step;
}

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

function render(streams) {
  const now = Date.now();
  const seen = new Set();
  streams.forEach((s, i) => {
    seen.add(s.name);
    let card = cards.get(s.name);
    if (!card) {
      card = makeCard(s.name);
      cards.set(s.name, card);
    }
    if (list.children[i] !== card.item) list.insertBefore(card.item, list.children[i] || null);
    updateCard(card, s, now);
  });
  for (const [name, card] of cards) {
    if (seen.has(name)) continue;
    showThumbnail(card, null);
    card.item.remove();
    cards.delete(name);
  }
  const playing = streams.filter((s) => s.state === "playing").length;
  summary.textContent = streams.length + " stream" + (streams.length === 1 ? "" : "s") +
    ", " + playing + " playing";
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

function play(stream) {
  if (!stream.hls) return;
  if (current === stream.name) return;
  current = stream.name;
  for (const card of cards.values()) card.item.classList.toggle("selected", card.item.dataset.stream === current);
  const problem = playerProblem();
  nowPlaying.textContent = (useHlsJs || native ? "Playing " + stream.name + ". " : "") + (problem || "");
  if (hls) { hls.destroy(); hls = null; }
  if (useHlsJs) {
    hls = new window.Hls({
      liveDurationInfinity: true,
      xhrSetup: (xhr) => { if (token) xhr.setRequestHeader("Authorization", "Bearer " + token); },
    });
    hls.on(window.Hls.Events.ERROR, (_, data) => {
      if (!data.fatal) return;
      if (data.type === window.Hls.ErrorTypes.NETWORK_ERROR) hls.startLoad();
      else if (data.type === window.Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
    });
    hls.loadSource(stream.hls);
    hls.attachMedia(video);
  } else if (native) {
    video.src = stream.hls;   // Safari (and recent Chromium) play HLS natively
  } else {
    return;
  }
  video.play().catch(() => {});   // muted autoplay; a refusal leaves the controls
}

function choose(streams) {
  const wanted = chosenByUser && streams.find((s) => s.name === chosenByUser);
  if (wanted) { play(wanted); return; }
  if (current === null) {
    const first = streams.find((s) => s.state === "playing" && s.hls);
    if (first) play(first);
  }
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
    choose(streams);
    updated.textContent = "updated " + new Date().toLocaleTimeString();
  } catch (err) {
    errorLine.hidden = false;
    errorLine.textContent = "Cannot reach the relay: " + err;
  }
}

const problemAtStart = playerProblem();
if (problemAtStart) {
  nowPlaying.textContent = problemAtStart;
  nowPlaying.classList.toggle("error", !native);
}
refresh();
setInterval(refresh, REFRESH_MS);

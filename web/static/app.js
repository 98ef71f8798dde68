// Relay's page: the stream list from /api/streams (every 2 s) and one HLS player.
"use strict";

const REFRESH_MS = 2000;
const video = document.getElementById("player");
const list = document.getElementById("streams");
const errorLine = document.getElementById("streams-error");
const nowPlaying = document.getElementById("now-playing");
const updated = document.getElementById("updated");

let current = null;   // name of the stream playing
let hls = null;       // the hls.js instance, when one is used
let chosenByUser = new URLSearchParams(location.search).get("stream");

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function rate(bits) {
  if (bits == null) return null;
  return bits >= 1e6 ? (bits / 1e6).toFixed(2) + " Mb/s" : Math.round(bits / 1e3) + " kb/s";
}

function describeTrack(t) {
  const parts = [t.codec];
  if (t.kind === "video") {
    if (t.width && t.height) parts.push(t.width + "×" + t.height);
    if (t.fps != null) parts.push(t.fps + " fps");
  } else {
    if (t.sample_rate) parts.push(t.sample_rate / 1000 + " kHz");
    if (t.channels) parts.push(t.channels === 1 ? "mono" : t.channels + " ch");
  }
  const r = rate(t.bitrate);
  if (r) parts.push(r);
  return t.kind + ": " + parts.join(", ");
}

function render(streams) {
  list.replaceChildren();
  for (const s of streams) {
    const item = el("li");
    item.dataset.stream = s.name;
    if (s.name === current) item.classList.add("selected");
    const head = el("div");
    head.append(el("span", "name", s.name), el("span", "state " + s.state, s.state));
    item.append(head);
    item.append(el("div", "detail", s.source || ""));
    for (const t of s.tracks || []) item.append(el("div", "detail", describeTrack(t)));
    item.append(el("div", "detail", "packets lost: " + (s.packets_lost ?? 0)));
    if (s.last_error) item.append(el("div", "detail error", "last error: " + s.last_error));
    item.addEventListener("click", () => {
      chosenByUser = s.name;
      const url = new URL(location.href);
      url.searchParams.set("stream", s.name);
      history.replaceState(null, "", url);
      play(s);
    });
    list.append(item);
  }
}

function play(stream) {
  if (!stream.hls) return;
  if (current === stream.name) return;
  current = stream.name;
  for (const item of list.children) item.classList.toggle("selected", item.dataset.stream === current);
  nowPlaying.textContent = "Playing " + stream.name;
  if (hls) { hls.destroy(); hls = null; }
  if (window.Hls && window.Hls.isSupported()) {
    hls = new window.Hls({ liveDurationInfinity: true });
    hls.on(window.Hls.Events.ERROR, (_, data) => {
      if (!data.fatal) return;
      if (data.type === window.Hls.ErrorTypes.NETWORK_ERROR) hls.startLoad();
      else if (data.type === window.Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
    });
    hls.loadSource(stream.hls);
    hls.attachMedia(video);
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = stream.hls;   // Safari plays HLS natively
  } else {
    nowPlaying.textContent = "This browser cannot play HLS (hls.js did not load: run `make web`).";
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
    const response = await fetch("/api/streams", { cache: "no-store" });
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

refresh();
setInterval(refresh, REFRESH_MS);

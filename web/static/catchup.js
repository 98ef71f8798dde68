// The LL-HLS player's catch-up, shared by the page (app.js) and bench/glass.py's bare page, so
// both measure one copy. hls.js starts LL-HLS at a segment's keyframe, up to a GOP behind its
// target, and speeds up only while more than a second is buffered ahead: skip to its live sync
// position once that is buffered (bench/glass.py: median 1.2 -> 0.9 s). After a long stall on a
// busy machine it stayed 10 s behind for good: jump back then too. Either seek waits until the
// sync position is buffered: a seek past the buffer is a stall of its own (bench/glass.py: a
// resync that did not wait was followed by a 2 s freeze while parts came on time).
"use strict";

const SKIP_AHEAD_S = 0.3;             // joined this far behind hls.js's target: skip once
const RESYNC_BEHIND_S = 3;            // this far behind hls.js's target: jump to live

// Seeks `video` to hls.js's live sync position when due; true when it did (the caller then
// passes skipped = true: the skip ahead is done once, the resync whenever it is due).
function catchUp(player, video, skipped) {
  const sync = player.liveSyncPosition;
  const buffered = video.buffered;
  if (sync === null || !buffered.length || video.currentTime === 0) return false;
  const behind = player.latency - player.targetLatency;
  const ready = buffered.end(buffered.length - 1) > sync + 0.1;
  if (ready && ((!skipped && behind > SKIP_AHEAD_S) || behind > RESYNC_BEHIND_S)) {
    video.currentTime = sync;
    return true;
  }
  return false;
}

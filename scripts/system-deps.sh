#!/usr/bin/env bash
# Installs the Debian packages of the real peers the tests use (GStreamer's RTSP server, ffmpeg,
# nginx with the RTMP module, Chromium). As root it installs them; otherwise it names the command.
set -euo pipefail
packages=(
  python3-venv python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-tools
  gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  ffmpeg nginx libnginx-mod-rtmp libnginx-mod-stream openssl wrk chromium nodejs npm docker-compose
)
missing=()
for p in "${packages[@]}"; do
  # npm/node may come from elsewhere (nvm, NodeSource): a working command is enough
  case "$p" in nodejs) command -v node >/dev/null && continue ;; npm) command -v npm >/dev/null && continue ;; esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "missing Debian packages; install them with:" >&2
  echo "  sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi

"""Relay: pulls RTSP/RTP sources onto one bus and fans them out to HLS and RTMP."""

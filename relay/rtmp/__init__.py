"""RTMP publishing, sans-IO: handshake, chunk stream, AMF0, messages, FLV tag bodies, publisher.

Specs: Adobe RTMP 1.0 (2012), Adobe AMF0 (2006), Adobe FLV v10 annex E, Enhanced RTMP v1.
"""

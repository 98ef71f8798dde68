"""Audio processing beyond remuxing: transcoding to AAC and made-up silent AAC (PyAV)."""

"""Cross-cutting pieces: the error format, health checks, realtime events, the embedded stack."""

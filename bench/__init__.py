"""Benchmark harness: smsq against plain rq and dramatiq (see bench/README.md)."""

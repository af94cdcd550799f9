"""Benchmarks, run by hand (``make bench`` or ``python -m bench``); they print figures, never assert timings."""

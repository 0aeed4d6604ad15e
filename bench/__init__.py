"""The performance benchmark of issue 7 (`./scripts/bench`; not part of the test suite).

It runs the real stack — the Procfile's worker (and web) processes on PostgreSQL and Redis —
against a fast receiver on 127.0.0.1, measures the raw-HTTP ceiling in the same run, and
writes `bench/results/latest.json`. docs/PERFORMANCE.md says what each figure means.
"""

"""Benchmarks: each prints its figures next to a yardstick measured in the same run."""

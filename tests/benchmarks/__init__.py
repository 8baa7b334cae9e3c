"""Benchmarks: speed and memory, reported as ratios against a baseline measured in the same run."""

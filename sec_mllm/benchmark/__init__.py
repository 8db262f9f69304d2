"""Benchmarks: speed and memory of projectors and whole models (speed.py)."""

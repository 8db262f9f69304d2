"""Benchmarks: speed and memory (speed.py) and compressor accuracy on the synthetic benchmark (accuracy.py)."""

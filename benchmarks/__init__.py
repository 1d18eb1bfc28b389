"""Side-by-side benchmarks; `python -m benchmarks.run` writes BENCHMARKS.md."""

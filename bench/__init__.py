"""Benchmarks of the bot as its users feel it; see bench/README.md and docs/benchmarks.md."""

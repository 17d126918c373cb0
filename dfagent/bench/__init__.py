"""Benchmark harnesses that need a lab (the `dfagent bench …` commands drive them)."""

"""Experiment scripts (see docs/results.md)."""

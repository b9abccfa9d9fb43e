"""Experiment scripts, run from the source checkout (demo, training, evaluation)."""

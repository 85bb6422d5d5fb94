"""Measuring and improving the agent: benchmarks and their scorers, evaluation, the viewer, and Flow-GRPO training."""

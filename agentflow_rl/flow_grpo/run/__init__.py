"""Running a job: checkpoints, the exported deliverable, metrics and alerts, kept rollouts, memory tuning.

``checkpoint`` saves and finds resumable state; ``export`` writes each trained module for serving;
``metrics`` computes a step's figures, ``tracking`` logs them (metrics.jsonl, TensorBoard) and
plots curves, ``alerts`` warns when a module drifts; ``kept_rollouts`` keeps a few rollouts per
step for ``agentflow view``; ``memory`` tunes a CPU process's allocator for runs with a budget.
"""

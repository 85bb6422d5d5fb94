"""Running a job: checkpoints, the exported deliverable, metrics and alerts, kept rollouts, memory tuning.

``checkpoint`` saves and finds resumable state, ``manifest`` seals and checks it, ``identity`` names
the settings it cannot be resumed without, ``resume`` picks and loads the one a run starts from and
``logs`` keeps metrics and kept rollouts in step with it; ``storage`` says why a write failed;
``export`` writes each trained module for serving;
``metrics`` computes a step's figures, ``tracking`` logs them (metrics.jsonl, TensorBoard) and
plots curves, ``alerts`` warns when a module drifts; ``kept_rollouts`` keeps a few rollouts per
step for ``agentflow view``; ``memory`` tunes a CPU process's allocator for runs with a budget.
"""

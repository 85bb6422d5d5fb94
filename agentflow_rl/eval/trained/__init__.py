"""``agentflow eval trained RUN``: a finished Flow-GRPO run on the benchmarks, untrained and trained side by side.

training_run   what a run left: the trained modules' folders, adapters or weights, the base model
serving        each trained module's two engines: vLLM servers started for the eval, or ``hf`` here
side_by_side   the two eval runs (``base``, ``trained``) and their comparison
"""

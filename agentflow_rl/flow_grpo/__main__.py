"""``python -m agentflow_rl.flow_grpo``: the training commands, for ``accelerate launch -m`` and nox."""

from agentflow_rl.flow_grpo.cli import main

if __name__ == "__main__":
    main(prog_name="python -m agentflow_rl.flow_grpo")

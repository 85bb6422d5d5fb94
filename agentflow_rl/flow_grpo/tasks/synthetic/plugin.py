"""Registers the synthetic task's tools and modules through the public hooks, as any plugin would."""

from __future__ import annotations

from agentflow_core import ModuleRegistrar, ToolRegistrar, hookimpl
from agentflow_rl.flow_grpo.tasks.synthetic.chat import ChatVerifier, SyntheticChatPlanner
from agentflow_rl.flow_grpo.tasks.synthetic.compact import CompactPlanner, CompactVerifier
from agentflow_rl.flow_grpo.tasks.synthetic.rules import RuleExecutor, RuleGenerator, RuleVerifier, StoppedGenerator
from agentflow_rl.flow_grpo.tasks.synthetic.tools import SPECS, ArithmeticTool, LookupTool
from agentflow_rl.flow_grpo.tasks.synthetic.world import LOOKUP, OPERATIONS, SyntheticTask


class SyntheticPlugin:
    """Registers the environment's tools and modules through the public hooks."""

    def __init__(self, task: SyntheticTask) -> None:
        self.task = task

    @hookimpl
    def register_tools(self, register: ToolRegistrar) -> None:
        register(SPECS[LOOKUP], lambda context: LookupTool(self.task.values))
        for name in OPERATIONS:
            register(SPECS[name], lambda context, name=name: ArithmeticTool(name))

    @hookimpl
    def register_modules(self, register: ModuleRegistrar) -> None:
        register("planner", "synthetic", CompactPlanner)
        register("planner", "synthetic_chat", SyntheticChatPlanner)
        register("executor", "synthetic", RuleExecutor)
        register("verifier", "synthetic", RuleVerifier)
        register("verifier", "synthetic_compact", CompactVerifier)
        register("verifier", "synthetic_chat", ChatVerifier)
        register("generator", "synthetic", RuleGenerator)
        register("generator", "synthetic_stopped", StoppedGenerator)

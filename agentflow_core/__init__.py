"""AgentFlow's core: hooks, records, config, the four modules and the solver.

What is listed in ``__all__`` is the public API, with two public modules: ``agentflow_core.testing``
(helpers for plugins' tests) and ``agentflow_core.inert`` (untrusted text made safe to print);
everything else may change. Importing this package is cheap: engine SDKs, torch and docker are
imported only by the code that uses them.
"""

from agentflow_core.benchmark import Benchmark, BenchmarkItem, Score
from agentflow_core.config import Config, load_config, structure_settings
from agentflow_core.engine import (
    Completion,
    Engine,
    EngineConfig,
    GenerationRequest,
    GrammarTrace,
    JsonSchema,
    Message,
    TokenTrace,
    Usage,
)
from agentflow_core.engines.ladder import StructuredOutputLadder
from agentflow_core.engines.retry import CallFailure, RetryPolicy, describe_failure
from agentflow_core.errors import (
    AgentFlowError,
    ConfigError,
    EngineError,
    EngineUnavailable,
    ModuleError,
    PluginError,
    ToolError,
    ToolSourceError,
    UsageError,
)
from agentflow_core.hookspecs import hookimpl, hookspec
from agentflow_core.module import Executor, FlowState, Generator, ModuleContext, Planner, Verifier
from agentflow_core.records import (
    Answer,
    Decision,
    Fit,
    ModuleCall,
    PlannerDecision,
    Query,
    QueryAnalysis,
    Step,
    StopReason,
    ToolCall,
    ToolErrorKind,
    ToolFailure,
    ToolFit,
    ToolResult,
    ToolSuccess,
    Trajectory,
    UnfinishedStep,
    Verdict,
)
from agentflow_core.registry import (
    BenchmarkRegistrar,
    EngineRegistrar,
    ModuleRegistrar,
    ToolRegistrar,
    ToolSourceRegistrar,
)
from agentflow_core.serde import converter
from agentflow_core.solver import Solver
from agentflow_core.tool import Tool, ToolContext, ToolExample, ToolOutput, ToolSpec
from agentflow_core.tool_source import ToolAnnouncer, ToolSource, ToolSourceContext

__all__ = [
    "AgentFlowError",
    "Answer",
    "Benchmark",
    "BenchmarkItem",
    "BenchmarkRegistrar",
    "CallFailure",
    "Completion",
    "Config",
    "ConfigError",
    "Decision",
    "Engine",
    "EngineConfig",
    "EngineError",
    "EngineRegistrar",
    "EngineUnavailable",
    "Executor",
    "Fit",
    "FlowState",
    "GenerationRequest",
    "Generator",
    "GrammarTrace",
    "JsonSchema",
    "Message",
    "ModuleCall",
    "ModuleContext",
    "ModuleError",
    "ModuleRegistrar",
    "Planner",
    "PlannerDecision",
    "PluginError",
    "Query",
    "QueryAnalysis",
    "RetryPolicy",
    "Score",
    "Solver",
    "Step",
    "StopReason",
    "StructuredOutputLadder",
    "TokenTrace",
    "Tool",
    "ToolAnnouncer",
    "ToolCall",
    "ToolContext",
    "ToolError",
    "ToolErrorKind",
    "ToolExample",
    "ToolFailure",
    "ToolFit",
    "ToolOutput",
    "ToolRegistrar",
    "ToolResult",
    "ToolSource",
    "ToolSourceContext",
    "ToolSourceError",
    "ToolSourceRegistrar",
    "ToolSpec",
    "ToolSuccess",
    "Trajectory",
    "UnfinishedStep",
    "Usage",
    "UsageError",
    "Verdict",
    "Verifier",
    "converter",
    "describe_failure",
    "hookimpl",
    "hookspec",
    "load_config",
    "structure_settings",
]

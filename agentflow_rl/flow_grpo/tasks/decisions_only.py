"""The shipped default planner without its query analysis, for training the planner's decisions cheaply.

The default planner makes two kinds of call: one free-text analysis of the question (up to 160
tokens), then one ``{"tool", "question"}`` decision per turn. Only the verifier reads the analysis;
the decision prompt never shows it. So a rollout that skips the analysis asks the planner for its
decisions with exactly the prompts the shipped planner uses, at a fraction of the cost (on a 2-core
CPU the analysis was most of a rollout's decoding): the adapter trained here learns the decision
prompt the shipped agent sends. Registered as planner ``default_decisions``.
"""

from __future__ import annotations

from agentflow_core import FlowState, QueryAnalysis
from agentflow_core.modules.planner import DefaultPlanner


class DecisionsOnlyPlanner(DefaultPlanner):
    async def analyze(self, state: FlowState) -> QueryAnalysis:
        """No model call: an empty analysis."""
        return QueryAnalysis("")

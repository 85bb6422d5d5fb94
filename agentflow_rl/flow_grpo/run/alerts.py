"""One-line warnings when a trained module goes wrong, at the step it happens.

A run that drifts (replies stop parsing, every tool call fails, the policy runs away from its
reference) should say so in the log where it starts, not leave it to a curve read afterwards.

>>> from agentflow_rl.flow_grpo.config import AlertsConfig
>>> crossed({"module/planner/kl": 3.5}, AlertsConfig(kl=1.0), ["planner"])
['planner: KL to the reference 3.5 per token > 1 (alerts.kl)']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from agentflow_rl.flow_grpo.config import AlertsConfig

#: (metric under module/<role>/, threshold field, what it is).
_CHECKS = (
    ("parse_error_rate", "parse_error_rate", "reply parse-error rate"),
    ("tool_error_rate", "tool_error_rate", "tool-error rate"),
    ("kl", "kl", "KL to the reference"),
)


def crossed(values: Mapping[str, float], limits: AlertsConfig, roles: Iterable[str]) -> list[str]:
    lines = []
    timed_out = values.get("train/timed_out_groups", 0.0)
    if timed_out:
        lines.append(f"{timed_out:g} question group(s) ran past rollout.timeout_s and were left out of the step")
    for role in roles:
        for metric, field, what in _CHECKS:
            limit = getattr(limits, field)
            value = values.get(f"module/{role}/{metric}")
            if limit and value is not None and value > limit:
                unit = " per token" if metric == "kl" else ""
                lines.append(f"{role}: {what} {value:.3g}{unit} > {limit:g} (alerts.{field})")
    return lines

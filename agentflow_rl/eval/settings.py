"""The settings that make a run: what ``run.json`` remembers and a resumed run must ask for again.

A run directory holds results of one kind only, so its summary can say what made them. Here the
line is drawn between settings that change what a result means and those that do not:

- identity: the mode; the sample (sets, ``--limit``, ``--seed`` and a digest of the sampled items,
  which catches a data file that changed); each module's implementation, model, temperature,
  ``max_tokens`` and engine options; every ``[agent]`` setting (steps, time and token budgets,
  tools, tool timeout); each tool's engine and settings; tool-source sections; the judge.
- harmless: where a server is (``base_url``), keys, engine timeouts and retries (``timeout_s``,
  ``max_attempts`` and the ``HARMLESS_OPTIONS``), ``--concurrency``, ``--data-dir`` (the items'
  digest is what counts), ``--stop-after-failures``.

Values are kept as short text so that a refusal can name them; free-form tables (engine options,
tool settings, tool sources) are kept as a digest, because they may hold secrets that have no
place in a results folder.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

from agentflow_core import Config, EngineConfig
from agentflow_core.records import MODULE_ROLES
from agentflow_core.serde import to_dict
from agentflow_rl.eval.records import Mode, RunInfo

#: Engine options that change how a server is reached or waited for, never what it answers.
HARMLESS_OPTIONS = frozenset({"headers", "retry_base_s", "retry_max_s", "retry_after_cap_s", "n_threads"})


def run_settings(
    info: RunInfo, config: Config, items: Iterable[tuple[str, str, str, Sequence[str]]], judge: EngineConfig | None
) -> dict[str, str]:
    """The identity of a run asked for with ``info`` and ``config``; ``items``: (set, id, question, gold)."""
    settings = {
        "mode": info.mode.value,
        "benchmarks": ",".join(sorted(info.benchmarks)),
        "limit": _limit(info.limit),
        "seed": _text(info.seed),
        "sample": _digest(sorted(items)),
    }
    roles = MODULE_ROLES if info.mode is Mode.AGENT else ("generator",)
    for role in roles:
        settings[f"{role}.module"] = getattr(config.modules, role)
        settings.update(_engine(role, config.engines.for_module(role)))
    if info.mode is Mode.AGENT:
        settings.update({f"agent.{key}": _text(value) for key, value in to_dict(config.agent).items()})
        settings["agent.tools"] = _text(info.tools)  # the tools enabled, which defaults make depend on the machine
        for name in info.tools:
            if f"tool:{name}" in info.engines:  # only tools that call an engine have one
                settings.update(_engine(f"tools.{name}", config.tool_engine(name)))
            if config.tool_settings(name):
                settings[f"tools.{name}.settings"] = _digest(config.tool_settings(name))
        for section, table in sorted(config.tool_source_sections.items()):
            settings[f"[{section}]"] = _digest(table)
    if judge is not None:
        settings.update(_engine("judge", judge))
    return settings


def differences(old: RunInfo, new: RunInfo) -> list[str]:
    """``key value (now other)`` for each identity setting that differs; empty when the runs match.

    A ``run.json`` written before settings were recorded is compared on what it does say.
    """
    before, after = _comparable(old), _comparable(new)
    keys = list(dict.fromkeys([*before, *after]))
    if not old.settings:
        keys = [key for key in keys if key in before]
    changed = [key for key in keys if before.get(key) != after.get(key)]
    if any(key in changed for key in ("benchmarks", "limit", "seed")):
        changed = [key for key in changed if key != "sample"]  # a consequence, not news
    return [_difference(key, before.get(key), after.get(key)) for key in changed]


def _difference(key: str, old: str | None, new: str | None) -> str:
    if key == "sample":
        return "the sampled items (the data files changed)"
    return f"{key} {old if old is not None else 'unset'} (now {new if new is not None else 'unset'})"


def _comparable(info: RunInfo) -> dict[str, str]:
    """``info.settings``, or for an older ``run.json`` what its own fields say in the same keys."""
    if info.settings:
        return dict(info.settings)
    known = {"mode": info.mode.value, "benchmarks": ",".join(sorted(info.benchmarks))}
    known |= {"limit": _limit(info.limit), "seed": _text(info.seed)}
    for role, model in info.engines.items():
        known[f"tools.{role[5:]}.engine" if role.startswith("tool:") else f"{role}.engine"] = model
    if info.mode is Mode.AGENT:
        known |= {"agent.max_steps": _text(info.max_steps), "agent.tools": _text(info.tools)}
    if info.judge is not None:
        known["judge.engine"] = info.judge
    return known


def _engine(prefix: str, engine: EngineConfig) -> dict[str, str]:
    settings = {
        f"{prefix}.engine": engine.model,
        f"{prefix}.temperature": _text(engine.temperature),
        f"{prefix}.max_tokens": _text(engine.max_tokens),
    }
    options = {key: value for key, value in engine.options.items() if key not in HARMLESS_OPTIONS}
    if options:
        settings[f"{prefix}.options"] = _digest(options)
    return settings


def _limit(limit: int | None) -> str:
    return str(limit) if limit else "all"


def _text(value: Any) -> str:
    if value is None:
        return "default"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "none"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _digest(value: Any) -> str:
    blob = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]

"""Test helpers for Flow-GRPO, public so that plugin authors can test a trainer change the same way.

``tiny_world()`` builds the synthetic task, the tiny policy and a registry with both plugins;
``ScriptedPlanner`` is an engine provider that answers ``{"tool": ...}`` from a list, for testing
the environment without a model; ``write_config`` writes a small training TOML.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from agentflow_core import Completion, Config, EngineConfig, EngineRegistrar, GenerationRequest, hookimpl
from agentflow_core.config import AgentConfig, EnginesConfig, ModulesConfig
from agentflow_core.plugins import load_registry
from agentflow_core.registry import Registry
from agentflow_rl.flow_grpo.model.tiny_policy import TinyPolicyConfig, build_policy, build_tokenizer
from agentflow_rl.flow_grpo.rollout import PolicyEngines
from agentflow_rl.flow_grpo.tasks.synthetic.plugin import SyntheticPlugin
from agentflow_rl.flow_grpo.tasks.synthetic.world import TOOL_NAMES, SyntheticTask


@attrs.frozen
class TinyWorld:
    task: SyntheticTask
    tokenizer: Any
    model: Any
    registry: Registry

    def config(
        self,
        temperature: float = 0.7,
        max_turns: int = 3,
        planner: str = "synthetic",
        max_batch: int = 1,
        seed: int | None = None,
    ) -> Config:
        options: dict[str, int] = {"max_batch": max_batch}
        if seed is not None:
            options["seed"] = seed
        engine = EngineConfig(model="policy:planner", temperature=temperature, max_tokens=8, options=options)
        return synthetic_config(engine, max_turns, planner)


def synthetic_config(engine: EngineConfig, max_turns: int = 3, planner: str = "synthetic") -> Config:
    modules = ModulesConfig(planner=planner, executor="synthetic", verifier="synthetic", generator="synthetic")
    return Config(
        agent=AgentConfig(tools=TOOL_NAMES, max_steps=max_turns), engines=EnginesConfig(default=engine), modules=modules
    )


def tiny_world(seed: int = 0, hidden: int = 64) -> TinyWorld:
    task = SyntheticTask.make(seed=seed)
    tokenizer = build_tokenizer(task.vocabulary())
    model = build_policy(tokenizer, TinyPolicyConfig(hidden=hidden, seed=seed)).eval()
    engines = PolicyEngines.for_model(model, tokenizer)
    registry = load_registry(entry_points=False, extra=[SyntheticPlugin(task), engines])
    return TinyWorld(task, tokenizer, model, registry)


class ScriptedPlanner:
    """Engine provider ``scripted``: each ``generate`` answers ``{"tool": <next name>}``."""

    __test__ = False

    def __init__(self, tools: Iterable[str] = ()) -> None:
        self.queue: deque[str] = deque(tools)
        self.requests: list[GenerationRequest] = []

    def enqueue(self, *tools: str) -> None:
        self.queue.extend(tools)

    @hookimpl
    def register_engines(self, register: EngineRegistrar) -> None:
        register("scripted", lambda config: _ScriptedEngine(self, config.model))


class _ScriptedEngine:
    def __init__(self, owner: ScriptedPlanner, name: str) -> None:
        self.owner, self.name = owner, name

    async def generate(self, request: GenerationRequest) -> Completion:
        self.owner.requests.append(request)
        return Completion(json.dumps({"tool": self.owner.queue.popleft()}))

    async def aclose(self) -> None:
        pass


def write_config(path: Path, sections: Mapping[str, Mapping[str, Any]]) -> Path:
    """A TOML of ``{section: {key: value}}``; values may be str, bool, numbers, lists or tables."""
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml(value)}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def save_tiny_chat_model(path: Path, corpus: Iterable[str], *, seed: int = 0, hidden: int = 64) -> Path:
    """A random 2-layer Llama with a byte-level BPE tokenizer and a chat template, saved as a
    transformers folder: a stand-in for a real chat model (``policy.source = "hf:<path>"``, or an
    ``hf:`` engine) that loads in milliseconds. Byte-level, so every string has a spelling."""
    import tokenizers
    import torch
    import transformers

    backend = tokenizers.ByteLevelBPETokenizer()
    backend.train_from_iterator(list(corpus), vocab_size=320, min_frequency=1, special_tokens=["<|end|>", "<|pad|>"])
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend._tokenizer, eos_token="<|end|>", pad_token="<|pad|>", chat_template=CHAT_TEMPLATE
    )
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformers.LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path

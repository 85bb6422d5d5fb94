"""After an optimizer step of a full-weight run: the trained model written once, then reloaded in place by every server.

vLLM 0.32 (its CPU build included) can swap a running server's weights for those in a folder, with
no restart: ``POST /collective_rpc {"method": "reload_weights", "kwargs": {"weights_path": FOLDER}}``
has every worker load the folder's safetensors into the model it serves. That route, and the two
used after it, exist only on a server started with ``VLLM_SERVER_DEV_MODE=1`` (which the launcher
sets for a full-weight run): ``/reset_prefix_cache``, because cached KV blocks of a prompt were
computed with the old weights and would otherwise be reused, and ``/update_weight_version``, which
labels what the server now holds. A load counts once ``/weight_info`` answers with the new label;
a server that fails any of it is dropped as the adapter publisher drops one.

Version ``N`` goes to ``<root>/v00000N/<module>/`` (a transformers folder: about the model's size on
disk per version, the last ``keep`` kept). The servers serve the base model's name, and each holds
one model, so one module is trained this way (the config refuses more).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agentflow_core.engines.token_runtime import CallFailure
from agentflow_rl.flow_grpo.fleet.publisher import Publisher

#: The environment a server needs for the routes above.
DEV_MODE = {"VLLM_SERVER_DEV_MODE": "1"}
#: How long a server may refuse to reset its prefix cache (it does while requests hold blocks).
RESET_DEADLINE_S = 30.0


class WeightsPublisher(Publisher):
    """Publishes one trained module's full weights to every live server of ``fleet``."""

    def write(self, model: Any, tokenizer: Any, modules: Sequence[str], folder: Path) -> dict[str, Path]:
        from agentflow_rl.flow_grpo.run.export import readable_as_umask

        [module] = modules
        target = folder / module
        model.save_pretrained(str(target), safe_serialization=True)
        tokenizer.save_pretrained(str(target))
        readable_as_umask(folder)
        return {module: target}

    async def load_on(self, url: str, folders: Mapping[str, Path], version: int) -> None:
        [folder] = folders.values()
        http = self.fleet.root_http(url)
        try:
            reload = {"method": "reload_weights", "kwargs": {"weights_path": str(folder)}}
            await http.post(reload, path="collective_rpc")
            reset = await _reset_prefix_cache(http)
            await http.post({"new_version": str(version)}, path="update_weight_version")
        except CallFailure as failure:
            self.fleet.drop(url, f"reloading weights version {version} failed: {failure.detail}")
            return
        if not reset:
            self.fleet.drop(url, f"after reloading version {version}, its prefix cache would not reset")
            return
        await self.check_on(url, folders, version)

    async def check_on(self, url: str, folders: Mapping[str, Path], version: int) -> None:
        try:
            held = json.loads(await self.fleet.root_http(url).get("weight_info")).get("weight_version")
        except CallFailure as failure:
            self.fleet.drop(url, f"checking weights version {version} failed: {failure.detail}")
            return
        except (ValueError, AttributeError):
            held = None
        if held != str(version):
            self.fleet.drop(url, f"after reloading version {version}, it says it holds version {held}")
            return
        for module in folders:
            self.fleet.versions.record(url, module, version)


async def _reset_prefix_cache(http: Any) -> bool:
    """Whether the server emptied its prefix cache within :data:`RESET_DEADLINE_S`."""
    deadline = time.monotonic() + RESET_DEADLINE_S
    while True:
        try:
            if json.loads(await http.post({}, path="reset_prefix_cache")).get("success"):
                return True
        except (ValueError, AttributeError):
            pass
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.5)

"""After an optimizer step: each trained module's adapter written once, then loaded in place on every server.

Version ``N`` goes to ``<root>/v00000N/<module>/`` (the trainer's own PEFT export,
:func:`agentflow_rl.flow_grpo.model.lora.export_adapters`), and every live server gets, per module,
``POST /v1/load_lora_adapter {"lora_name": module, "lora_path": ..., "load_inplace": true}``:
vLLM swaps the weights behind the module's name without a restart (the server needs
``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``, which the launcher sets).

Why a new folder per version, not one overwritten folder: vLLM keys its prefix cache by the
adapter's name *and path*, so blocks computed with the old weights are never reused for the new
ones; and ``/v1/models`` then names the version a server holds. Why checking at all: vLLM 0.32
refuses a re-post without ``load_inplace`` with a 400, but older releases (and a gateway that
swallows errors) can leave the old weights in place behind a 200. So a load counts only once
``/v1/models`` lists the module with the new folder as its root; a server that fails that is
dropped (a warning line names it and why) and the step goes on while ``min_servers`` remain.
Folders older than the last ``keep`` versions are deleted.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agentflow_core.engines.token_runtime import CallFailure
from agentflow_rl.flow_grpo.fleet.servers import Fleet


class Publisher:
    """Publishing a version of the trained weights: written once under ``<root>/v<version>/``, loaded on
    every live server of ``fleet`` (a server whose load fails or does not take is dropped), the last
    ``keep`` versions kept on disk. Subclasses say what is written and how a server loads and shows it."""

    def __init__(self, fleet: Fleet, root: str | Path, *, keep: int = 2) -> None:
        self.fleet = fleet
        self.root = Path(root)
        self.keep = max(1, keep)

    async def publish(self, model: Any, tokenizer: Any, modules: Sequence[str], version: int) -> dict[str, Path]:
        """Write ``modules``' weights of ``model`` as ``version`` and load them everywhere.

        Returns each module's folder. Raises :class:`~agentflow_core.engines.endpoints.NoLiveEndpoint`
        when fewer than ``min_servers`` servers hold the new version afterwards.
        """
        folders = await asyncio.to_thread(self.write, model, tokenizer, modules, self.folder(version))
        await self.load(folders, version)
        self._prune(version)
        return folders

    async def load(self, folders: Mapping[str, Path], version: int) -> None:
        """Load already written ``folders`` (module -> folder) as ``version`` on every live server."""
        await asyncio.gather(*(self.load_on(url, folders, version) for url in self.fleet.live()))
        self.fleet.pool.require_live()

    async def confirm(self, folders: Mapping[str, Path], version: int) -> None:
        """Record ``version`` for every live server that shows it holds ``folders`` (another process
        loaded them: the other ranks of a run that shares one fleet); drop the servers that do not."""
        await asyncio.gather(*(self.check_on(url, folders, version) for url in self.fleet.live()))
        self.fleet.pool.require_live()

    def folder(self, version: int) -> Path:
        return self.root / f"v{version:06d}"

    def write(self, model: Any, tokenizer: Any, modules: Sequence[str], folder: Path) -> dict[str, Path]:
        """Each module's weights under ``folder``, readable by the servers; returns module -> folder."""
        raise NotImplementedError

    async def load_on(self, url: str, folders: Mapping[str, Path], version: int) -> None:
        """Have ``url`` load ``folders``, then :meth:`check_on` it."""
        raise NotImplementedError

    async def check_on(self, url: str, folders: Mapping[str, Path], version: int) -> None:
        """Record ``version`` for ``url`` if the server shows it holds ``folders``; else drop it."""
        raise NotImplementedError

    def _prune(self, version: int) -> None:
        for old in self.root.glob("v[0-9]*"):
            number = old.name[1:]
            if number.isdigit() and int(number) <= version - self.keep:
                shutil.rmtree(old, ignore_errors=True)


class AdapterPublisher(Publisher):
    """Publishes each module's LoRA adapter to every live server of ``fleet``, keeping the last ``keep`` on disk."""

    def write(self, model: Any, tokenizer: Any, modules: Sequence[str], folder: Path) -> dict[str, Path]:
        from agentflow_rl.flow_grpo.model import lora
        from agentflow_rl.flow_grpo.run.export import readable_as_umask

        folders = lora.export_adapters(model, tokenizer, modules, folder)
        readable_as_umask(folder)  # a server running as another user must read the weights too
        return folders

    async def load_on(self, url: str, folders: Mapping[str, Path], version: int) -> None:
        http = self.fleet.http(url)
        try:
            for module, folder in folders.items():
                body = {"lora_name": module, "lora_path": str(folder), "load_inplace": True}
                await http.post(body, path="load_lora_adapter")
        except CallFailure as failure:
            self.fleet.drop(url, f"loading adapter version {version} failed: {failure.detail}")
            return
        await self.check_on(url, folders, version)

    async def check_on(self, url: str, folders: Mapping[str, Path], version: int) -> None:
        try:
            served = _adapter_roots(await self.fleet.http(url).get("models"))
        except CallFailure as failure:
            self.fleet.drop(url, f"checking adapter version {version} failed: {failure.detail}")
            return
        stale = {m: served.get(m) for m, folder in folders.items() if served.get(m) != str(folder)}
        if stale:
            module, root = next(iter(stale.items()))
            self.fleet.drop(url, f"after loading version {version}, {module} is still served from {root}")
            return
        for module in folders:
            self.fleet.versions.record(url, module, version)


def _adapter_roots(models_body: str) -> dict[str, str]:
    """``/v1/models`` as ``{adapter name: folder it was loaded from}`` (vLLM lists an adapter's path as its root)."""
    try:
        cards = json.loads(models_body)["data"]
        return {str(card["id"]): str(card.get("root")) for card in cards if card.get("parent")}
    except (ValueError, KeyError, TypeError) as exc:
        raise CallFailure("malformed", f"/v1/models is not a model list: {exc}") from None

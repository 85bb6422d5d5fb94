"""Per-module LoRA adapters on one loaded llama.cpp model, switched between requests.

llama-cpp-python's ``Llama(lora_path=...)`` applies one adapter for the model's whole life, so four
modules with four adapters would need four models. llama.cpp keeps an adapter apart from the base
weights and lets a context change its active set between two decodes
(``llama_set_adapters_lora``), so one model serves every module: before each request the engine
turns on that module's adapter, or none.

The KV cache holds keys and values computed under whatever adapter was on at the time, and
llama-cpp-python reuses the cached prefix of the previous prompt; after a switch that prefix would
mix two adapters, so a switch also drops it (``Llama.reset``). Requests of one module in a row keep
reusing it, as without adapters.

Everything here runs in the engine's worker thread, one call at a time.
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentflow_core.errors import EngineError, EngineUnavailable

if TYPE_CHECKING:
    from llama_cpp import Llama

_OFF_HINT = "--no-adapters or [engines] adapters = false runs the bare model"


class AdapterSwitch:
    """The adapters of one model: loaded on first use, one (or none) active on its context."""

    def __init__(self, files: Mapping[str, Path], engine_name: str) -> None:
        self.files = dict(files)
        self._engine_name = engine_name
        self._loaded: dict[str, Any] = {}
        self._active: str | None = None

    def use(self, llama: Llama, module: str | None) -> None:
        """Make ``module``'s adapter the only active one (``None``: the bare model)."""
        if module == self._active:
            return
        import llama_cpp

        setter = getattr(llama_cpp, "llama_set_adapters_lora", None)
        if setter is None:
            raise EngineUnavailable(
                f"{self._engine_name}: this llama-cpp-python cannot switch LoRA adapters "
                f"(no llama_set_adapters_lora): upgrade it, or {_OFF_HINT}"
            )
        if module is None:
            status = setter(llama.ctx, None, 0, None)
        else:
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(self._load(llama, module))
            status = setter(llama.ctx, adapters, 1, (ctypes.c_float * 1)(1.0))
        if status != 0:
            raise EngineError(f"{self._engine_name}: llama.cpp refused to switch to the {module} adapter ({status})")
        llama.reset()  # the cached prefix was computed under the previous adapter
        self._active = module

    def release(self, llama: Llama) -> None:
        """Turn adapters off and free them; called before the model itself is closed."""
        if not self._loaded:
            return
        import llama_cpp

        self.use(llama, None)
        for adapter in self._loaded.values():
            llama_cpp.llama_adapter_lora_free(adapter)
        self._loaded.clear()

    def _load(self, llama: Llama, module: str) -> Any:
        adapter = self._loaded.get(module)
        if adapter is None:
            import llama_cpp

            path = self.files[module]
            adapter = llama_cpp.llama_adapter_lora_init(llama.model, str(path).encode("utf-8"))
            if not adapter:  # llama.cpp says why only in its log
                raise EngineUnavailable(
                    f"{self._engine_name}: llama.cpp cannot load the {module} adapter {path} "
                    f"(not a LoRA GGUF made for this model?); {_OFF_HINT}"
                )
            self._loaded[module] = adapter
        return adapter

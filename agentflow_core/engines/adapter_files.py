"""Where an in-process GGUF engine finds the LoRA adapter of each module: ``<folder>/<module>.gguf``.

The embedded model's adapters, trained with Flow-GRPO by the recipe in docs/flow-grpo.md, ship in
this package (:data:`SHIPPED`), so ``llamacpp:smollm2`` uses them with nothing configured. A folder
may hold adapters for only some modules; the others run on the bare model. An empty folder (or
none) changes nothing: every module then runs exactly as it would without adapter support.

Any other GGUF model gets adapters only when its engine names a folder (option ``adapters``).
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

from agentflow_core.engine import EngineConfig
from agentflow_core.engines.embedded import is_embedded_alias
from agentflow_core.errors import ConfigError, EngineUnavailable
from agentflow_core.records import MODULE_ROLES

#: Points the embedded model at another adapter folder than the shipped one (trying a new training run).
ENV_OVERRIDE = "AGENTFLOW_SMOLLM2_ADAPTERS"
#: The package folder that holds the shipped adapters of the embedded model.
SHIPPED = ("agentflow_core", "adapters", "smollm2")
SUFFIX = ".gguf"


def module_adapters(config: EngineConfig) -> dict[str, Path]:
    """``{module: adapter file}`` for the modules that have one under ``config``; cheap (a few ``stat``s).

    Option ``adapters``: a folder, or ``false`` for none; unset (or ``true``) means the shipped folder
    for the embedded model and none for any other. A folder that is named but missing is an error,
    since a typo would otherwise silently serve the bare model.
    """
    folder = adapter_folder(config)
    if folder is None:
        return {}
    found = {role: folder / f"{role}{SUFFIX}" for role in MODULE_ROLES}
    return {role: path for role, path in found.items() if path.is_file()}


def adapter_folder(config: EngineConfig) -> Path | None:
    """The folder ``config``'s adapters come from, or ``None`` when it has none."""
    option = config.options.get("adapters")
    if option is False:
        return None
    if option is not None and option is not True:
        if not isinstance(option, str):
            raise ConfigError(f"engine {config.model}: option adapters must be a folder or false, got {option!r}")
        folder = Path(option).expanduser()
        if not folder.is_dir():
            raise ConfigError(f"engine {config.model}: option adapters: no adapter folder at {folder}")
        return folder
    if not is_embedded_alias(config.model_name):
        return None
    override = os.environ.get(ENV_OVERRIDE)
    if not override:
        return shipped_folder()
    folder = Path(override).expanduser()
    if not folder.is_dir():  # like the model's own override: the environment, not the config file, is wrong
        raise EngineUnavailable(f"{ENV_OVERRIDE}={override} is not a folder (of <module>.gguf files); fix or unset it")
    return folder


def shipped_folder() -> Path:
    package, *parts = SHIPPED
    return Path(str(importlib.resources.files(package).joinpath(*parts)))

"""``agentflow adapters export-gguf``: trained PEFT adapters as the GGUF files the llamacpp engine loads.

The step between training and shipping: a Flow-GRPO run leaves ``<output_dir>/policy/<module>/``
PEFT folders; this writes ``<module>.gguf`` beside each other in a folder that the ``llamacpp``
engine reads (its ``adapters`` option, ``AGENTFLOW_SMOLLM2_ADAPTERS``, or the package's own
``agentflow_core/adapters/smollm2``). torch, safetensors and gguf are imported only when it runs.
"""

from __future__ import annotations

from pathlib import Path

import click

from agentflow_core import UsageError
from agentflow_core.records import MODULE_ROLES


@click.group("adapters")
def adapters_command() -> None:
    """LoRA adapters of the modules: convert trained ones for the llamacpp engine."""


@adapters_command.command("export-gguf")
@click.argument("source", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.argument("target", type=click.Path(path_type=Path))
@click.option(
    "--base",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The GGUF model the adapters will run on [default: the embedded SmolLM2].",
)
@click.option("--dtype", type=click.Choice(["f16", "f32"]), default="f16", show_default=True, help="Tensor type.")
def export_gguf_command(source: Path, target: Path, base: Path | None, dtype: str) -> None:
    """Convert a PEFT adapter folder SOURCE to the file TARGET, or every module's folder in SOURCE
    (a run's ``policy/``: planner/, executor/, ...) to TARGET/<module>.gguf."""
    from agentflow_core.engines.embedded import smollm2_gguf_path
    from agentflow_rl import gguf_lora

    model = gguf_lora.read_base(base or smollm2_gguf_path())
    for folder, out in _jobs(source, target):
        done = gguf_lora.convert(folder, out, model, dtype=dtype)
        click.echo(
            f"{done.path}: {done.weights} adapted weights, rank {done.rank}, alpha {done.alpha:g}, "
            f"{done.size_bytes / 2**20:.1f} MiB"
        )


def _jobs(source: Path, target: Path) -> list[tuple[Path, Path]]:
    """``(PEFT folder, GGUF file)`` pairs: one adapter, or one per module folder of a run."""
    if (source / "adapter_config.json").is_file():
        if target.is_dir():
            raise UsageError(f"{target} is a folder; name the .gguf file to write for one adapter")
        return [(source, target)]
    modules = [role for role in MODULE_ROLES if (source / role / "adapter_config.json").is_file()]
    if not modules:
        raise UsageError(
            f"{source} is neither a PEFT adapter folder nor a folder of module adapters "
            f"({', '.join(MODULE_ROLES)}) holding adapter_config.json"
        )
    if target.suffix == ".gguf":
        raise UsageError(f"{source} holds adapters of {', '.join(modules)}: name a folder to write them to, not a file")
    return [(source / role, target / f"{role}.gguf") for role in modules]

"""The training TOML's reference page, generated from ``TrainConfig`` and the tables below it.

``docs/training-config-reference.md`` is :func:`training_reference`'s output; a test fails when a
field has no ``#:`` comment or the page is older than the code.
"""

from __future__ import annotations

from agentflow_core.config_reference import Reference, render
from agentflow_rl.flow_grpo.config import TrainConfig

#: The command that writes the committed page; tests/test_config_reference.py names it when the page is stale.
REGENERATE = "python -m agentflow_rl.flow_grpo reference > docs/training-config-reference.md"

INTRO = f"""\
# Training config reference

Every table and key of a training TOML (`agentflow train CONFIG`), generated from the classes it is
read into: each key's meaning is the `#:` comment above its field. Do not edit this page; change the
comment, then regenerate it:

```bash
{REGENERATE}
```

`--set KEY=VALUE` overrides a key from the command line. Input files (`task.train_file`,
`task.eval_file`, `task.agent_config`) are relative to the TOML's folder, `run.output_dir` to the
working directory. An unknown key, a wrong type or a value out of range is refused when the file is
read, with the key and the file named. What each knob is for and what to expect:
[flow-grpo.md](flow-grpo.md); the agent of a `records` task: [config-reference.md](config-reference.md).

Types are TOML's: a *number* takes an integer too; *unset* means the key is left out (TOML has no
null). Bounds after a type are checked when the file is read.
"""


def training_reference() -> str:
    """The Markdown page: the top-level tables, then each table in the order ``TrainConfig`` declares them."""
    reference = Reference()
    reference.add(TrainConfig, "")
    return f"{INTRO}\n{render(reference.tables)}"

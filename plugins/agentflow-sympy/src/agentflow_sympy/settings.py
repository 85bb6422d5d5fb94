"""``[tools.symbolic_math]``: what the tool reads from ``agentflow.toml``.

Plain attrs with no SymPy import, so the plugin module can hand the class to ``register`` and
``agentflow config reference`` documents these keys from their ``#:`` comments.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class Settings:
    #: Seconds one computation may take before the tool gives up on it.
    timeout_s: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    #: Longest expression accepted, in characters.
    max_length: int = attrs.field(default=500, validator=attrs.validators.ge(1))
    #: Longer results are cut, with a note saying how much was left out.
    max_output_chars: int = attrs.field(default=4000, validator=attrs.validators.ge(100))

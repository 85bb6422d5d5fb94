"""A tiny, randomly initialised causal LM and a tokenizer built in code, for CPU-sized proofs.

Nothing is downloaded: the tokenizer is a ``tokenizers`` WordLevel model over a closed list of
words (the synthetic environment's vocabulary), and the model is a few-layer Llama made from a
config. Two extra vocabulary entries, ``{"tool": "`` and ``"}``, are whole JSON fragments, so
that under constrained decoding the grammar forces every token of a planner reply except the
tool name: the policy has exactly one real choice per turn, which is what makes a 2-layer model
trainable in minutes. This is not a language model and knows nothing outside its word list.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

#: Role markers of the chat template; ``END`` doubles as the end-of-sequence token.
SYSTEM, USER, ASSISTANT, END, PAD, UNK = "<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<pad>", "<unk>"
SPECIAL_TOKENS = (PAD, UNK, END, SYSTEM, USER, ASSISTANT)
#: The fixed parts of ``{"tool": "NAME"}`` and ``{"decision": "STOP"}`` as xgrammar spells JSON
#: without free whitespace.
JSON_PIECES = ('{"tool": "', '{"decision": "', '"}')

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@attrs.frozen
class TinyPolicyConfig:
    """Shape of the tiny Llama; the defaults train to the synthetic target on 2 CPU cores."""

    #: Transformer blocks.
    layers: int = attrs.field(default=2, validator=attrs.validators.ge(1))
    #: Width of the residual stream; must be divisible by ``heads``.
    hidden: int = attrs.field(default=64, validator=attrs.validators.ge(8))
    #: Attention heads; must divide ``hidden``.
    heads: int = attrs.field(default=4, validator=attrs.validators.ge(1))
    #: Seed of the random initialisation (the reference model is rebuilt from it on resume).
    seed: int = 0
    #: Share the input embeddings with the output layer, as SmolLM2 and Qwen2.5's small models do.
    tie_embeddings: bool = False

    def __attrs_post_init__(self) -> None:
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")


def build_tokenizer(words: Iterable[str]) -> Any:
    """A fast tokenizer over ``words`` (whitespace-split) with a chat template and JSON pieces.

    >>> tok = build_tokenizer(["lookup", "double"])
    >>> tok.decode(tok.convert_tokens_to_ids(['{"tool": "', "double", '"}']))
    '{"tool": "double"}'
    """
    import tokenizers
    from tokenizers import decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab: dict[str, int] = {}
    for token in (*SPECIAL_TOKENS, *JSON_PIECES, *sorted(set(words))):
        vocab.setdefault(token, len(vocab))
    backend = tokenizers.Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # Fuse concatenates pieces as they are, so JSON decodes without stray spaces.
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens(list(SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=END,
        pad_token=PAD,
        unk_token=UNK,
        chat_template=CHAT_TEMPLATE,
    )


def build_policy(tokenizer: Any, config: TinyPolicyConfig = TinyPolicyConfig()) -> Any:
    """A freshly initialised Llama sized for ``tokenizer``; the same seed gives the same weights."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    model_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden,
        intermediate_size=config.hidden * 2,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        num_key_value_heads=config.heads,
        max_position_embeddings=256,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=config.tie_embeddings,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = LlamaForCausalLM(model_config)
    return model.float()

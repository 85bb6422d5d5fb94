"""Planning which prompt tokens a batch forwards once."""

from __future__ import annotations

import pytest

from agentflow_core.engines.prefix import plan_prefix


def test_identical_prompts_are_forwarded_once_and_share_their_opening() -> None:
    opening = tuple(range(100, 120))
    prompts = [(*opening, 1, 2), (*opening, 3), (*opening, 1, 2), (*opening, 1, 2)]
    plan = plan_prefix(prompts)
    assert plan.common == opening
    assert plan.remainders == ((1, 2), (3,))
    assert plan.rows == (0, 1, 0, 0)
    assert plan.forwarded_tokens == 23


def test_every_remainder_keeps_the_last_prompt_token() -> None:
    """The last prompt position's logits predict the first completion token, so it is never shared away."""
    prompt = tuple(range(30))
    plan = plan_prefix([prompt, prompt])
    assert plan.common == prompt[:-1] and plan.remainders == ((29,),) and plan.rows == (0, 0)
    plan = plan_prefix([prompt, prompt[:12]])
    assert plan.common == prompt[:11]
    assert all(len(r) >= 1 for r in plan.remainders)


def test_a_short_common_prefix_is_not_split_off() -> None:
    plan = plan_prefix([(1, 2, 3, 4, 5), (1, 2, 3, 9, 9)])
    assert plan.common == () and plan.remainders == ((1, 2, 3, 4, 5), (1, 2, 3, 9, 9))


def test_an_empty_prompt_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one token"):
        plan_prefix([(1, 2), ()])


def test_the_output_head_is_given_contiguous_rows_and_computes_the_same_logits() -> None:
    # ``logits_to_keep`` hands the head a strided view, which PyTorch's CPU bfloat16 matmul turns
    # into an allocation as large as the whole hidden state; the hook copies the kept rows first.
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from agentflow_core.engines.prefix import contiguous_head_input

    config = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).to(torch.bfloat16).eval()
    ids = torch.randint(0, 64, (3, 7))
    seen: list[bool] = []

    def record(module: object, args: tuple[torch.Tensor, ...]) -> None:
        seen.append(args[0].is_contiguous())

    probe = model.get_output_embeddings().register_forward_pre_hook(record)
    with torch.no_grad():
        before = model(input_ids=ids, logits_to_keep=2).logits
    probe.remove()
    assert seen == [False]  # what the head gets without the hook

    assert contiguous_head_input(contiguous_head_input(model)) is model  # applying it twice adds one hook
    model.get_output_embeddings().register_forward_pre_hook(record)
    with torch.no_grad():
        after = model(input_ids=ids, logits_to_keep=2).logits
    assert seen == [False, True]
    assert len(model.get_output_embeddings()._forward_pre_hooks) == 2
    assert torch.equal(before, after)


def test_one_row_reaches_the_head_with_strides_that_let_matmul_fold_it_into_one_matrix() -> None:
    # One row sliced by ``logits_to_keep`` counts as contiguous but keeps the stride of the whole
    # sequence in its size-1 batch dimension; matmul then takes the bmm path, which copies the head
    # weight expanded to the batch (57 MB on SmolLM2) whenever the rows carry a gradient.
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from agentflow_core.engines.prefix import contiguous_head_input

    config = transformers.LlamaConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2
    )
    model = contiguous_head_input(transformers.LlamaForCausalLM(config))
    strides: list[tuple[int, ...]] = []
    model.get_output_embeddings().register_forward_hook(lambda module, args, out: strides.append(args[0].stride()))
    with torch.no_grad():
        model(input_ids=torch.randint(0, 64, (1, 7)), logits_to_keep=2)
    assert strides == [(2 * 16, 16, 1)]

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

"""`agentflow view` in a real headless Chromium (Debian's, driven by Playwright), against runs made by
the real eval runner and trainer: filter a run, open trajectories, compare runs, read training curves,
watch a run grow, open an export from disk, and a tool result full of markup that must not run."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from agentflow_core.records import Fit, ModuleCall, ToolFit, ToolSuccess, Trajectory
from agentflow_core.serde import to_json
from agentflow_rl.eval import RunDir
from agentflow_rl.flow_grpo.run.kept_rollouts import kept_path, read_kept_rollouts
from tests.eval_support import run_agentflow
from tests.view_support import (
    ITEMS,
    XSS_ITEM,
    XSS_PAYLOAD,
    FlowScript,
    make_eval_run,
    off_the_loop,
    serve,
    write_data,
)

CHROMIUM = Path(os.environ.get("AGENTFLOW_CHROMIUM", "/usr/bin/chromium"))
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Milliseconds Playwright waits for a condition before failing.
WAIT_MS = 15_000


def _missing(what: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what}; CI must have it (.ci/run installs chromium, the dev extra playwright)")
    pytest.skip(what)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed")
    if not CHROMIUM.is_file():
        _missing(f"no Chromium at {CHROMIUM}")
    with sync_playwright() as playwright:  # launch() starts Chromium on a fresh profile of its own
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors
    yield page
    context.close()
    assert errors == [], errors


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("view-browser")
    data = write_data(root / "data")
    script_a = FlowScript(right={"0", "1", "5"}, two_turns={"1", "3"}, failing_tool={"2"})
    run_a = off_the_loop(lambda: make_eval_run(root / "run-a", data, script_a))
    script_b = FlowScript(right={"0", "2", "3", "5"}, two_turns={"2"})
    run_b = off_the_loop(lambda: make_eval_run(root / "run-b", data, script_b))
    trajectory = root / "dune.json"
    trajectory.write_text(to_json(RunDir(run_a).read()[("bamboogle", "1")].trajectory, indent=2))
    return {"root": root, "a": run_a, "b": run_b, "trajectory": trajectory}


def _rows(page: Any) -> Any:
    return page.locator(".vlist .qrow")


def _wait_rows(page: Any, count: int) -> None:
    page.wait_for_function(f"() => document.querySelectorAll('.vlist .qrow').length === {count}")


def _row_of(page: Any, item: str) -> Any:
    return _rows(page).filter(has=page.locator(".c-id", has_text=re.compile(f"^{item}$")))


def test_a_run_filters_to_wrong_answers_and_opens_trajectories(page: Any, runs: dict[str, Path]) -> None:
    with serve(runs["a"], cwd=runs["root"]) as url:
        page.goto(url)
        _wait_rows(page, 6)
        summary = page.locator("table.summary tbody tr").first.inner_text()
        assert summary.split("\t")[:3] == ["bamboogle", "6", "50.0"]
        assert page.locator(".chart-box svg rect.bar").count() == 1

        page.click(".chip[data-outcome='wrong']")
        _wait_rows(page, 3)
        assert {_rows(page).nth(i).get_attribute("data-outcome") for i in range(3)} == {"wrong"}
        assert page.locator(".count").inner_text() == "3 of 6 queries"
        assert "outcome=wrong" in page.url
        page.select_option("select[name='turns']", "2")
        _wait_rows(page, 1)
        assert _rows(page).first.locator(".c-id").inner_text() == "3"
        page.reload()  # the filters live in the URL
        _wait_rows(page, 1)
        page.click(".chip[data-outcome='all']")
        page.select_option("select[name='turns']", "")
        page.fill("input[name='q']", "SPIDER")
        _wait_rows(page, 1)
        assert _rows(page).first.locator(".c-q").inner_text() == ITEMS[5][0]
        page.fill("input[name='q']", "")
        page.select_option("select[name='sort']", "tokens")
        page.select_option("select[name='dir']", "desc")
        _wait_rows(page, 6)
        assert _rows(page).first.locator(".c-t").inner_text() == "2"  # the two-turn items spent the most

        _row_of(page, "2").click()  # its tool call failed
        page.wait_for_selector(".turn")
        failure = RunDir(runs["a"]).read()[("bamboogle", "2")].trajectory.steps[0].result
        assert page.locator(".tool-result.failure .result-head").inner_text().startswith("tool error: failed")
        assert page.locator(".tool-result.failure pre").inner_text() == failure.error
        page.go_back()
        _wait_rows(page, 6)
        _row_of(page, "1").click()
        page.wait_for_selector(".turn")
        assert page.locator(".turn").count() == 2
        assert page.locator(".turn .tool-result pre").first.inner_text() == "The answer is probably Frank Herbert."
        assert page.locator(".turn .verdict").all_inner_texts() == ["CONTINUE", "STOP"]
        assert page.locator(".turn .field-value").first.inner_text() == "Who wrote Dune?"  # the sub-goal
        assert "Frank Herbert" in page.locator(".answers pre").first.inner_text()
        assert page.locator(".timeline-bar .seg").count() >= 8  # analysis, 2 x (plan, tool, verify), answer
        first_call = page.locator(".call").first
        assert not first_call.locator(".message pre").first.is_visible()
        first_call.locator("summary").click()  # the full prompt, one click away
        assert "Question: Who wrote Dune?" in first_call.locator(".message pre").nth(1).inner_text()
        assert page.locator("text=prompt tok").count() == 1


def test_a_tool_result_holding_markup_is_shown_as_text_and_runs_nothing(page: Any, runs: dict[str, Path]) -> None:
    with serve(runs["a"], cwd=runs["root"]) as url:
        page.goto(url)
        _wait_rows(page, 6)
        _row_of(page, XSS_ITEM).click()
        page.wait_for_selector(".turn")
        assert page.locator(".turn .tool-result pre").inner_text() == XSS_PAYLOAD
        assert page.evaluate("window.__pwned") is None
        assert page.title() != "pwned" and page.title().startswith("AgentFlow view")
        assert page.locator("main img, main script, main a[href^='javascript']").count() == 0
        # Even markup that got into the page some other way would not run: the policy forbids inline script.
        probes = '<img src="data:," onerror="window.__pwned = 4"><img id="probe" src="x" onerror="window.__pwned = 5">'
        page.evaluate("(html) => document.body.insertAdjacentHTML('beforeend', html)", probes)
        page.wait_for_function("() => document.getElementById('probe').complete")
        assert page.evaluate("window.__pwned") is None
        response = page.request.get(url)
        assert "script-src 'self'" in response.headers["content-security-policy"]


def test_a_viewer_beyond_loopback_lets_in_only_the_browser_that_opened_its_link(
    page: Any, browser: Any, runs: dict[str, Path]
) -> None:
    with serve(runs["a"], cwd=runs["root"], options=["--host", "0.0.0.0"]) as printed:
        link = printed.replace("//0.0.0.0:", "//127.0.0.1:")
        base = link.partition("?")[0]
        assert "?token=" in link
        stranger = browser.new_context()
        try:
            response = stranger.new_page().goto(base)
            assert response.status == 401 and "needs its token" in response.text()
        finally:
            stranger.close()

        page.goto(link)
        _wait_rows(page, 6)
        assert page.url.startswith(base) and "token" not in page.url  # traded for a cookie, gone from the history
        assert page.evaluate("document.cookie") == ""  # HttpOnly: no script of the page can read it
        _row_of(page, "1").click()
        page.wait_for_selector(".turn")
        page.reload()  # the cookie keeps this browser in
        page.wait_for_selector(".turn")


def test_two_runs_compare_and_a_flip_opens_both_trajectories(page: Any, runs: dict[str, Path]) -> None:
    with serve(runs["a"], runs["b"], cwd=runs["root"]) as url:
        page.goto(url)  # two runs open on their comparison
        page.wait_for_selector("table.summary")
        assert page.locator("table.summary tbody tr").first.inner_text().split("\t")[:4] == [
            "bamboogle",
            "50.0",
            "66.7",
            "+16.7",
        ]
        assert page.locator(".chart-box svg rect.bar").count() == 2
        _wait_rows(page, 2)  # wrong in A, right in B: items 2 and 3
        assert sorted(page.locator(".vlist .c-id").all_inner_texts()) == ["2", "3"]
        page.click(".chip[data-flips='broken']")
        _wait_rows(page, 1)
        assert page.locator(".vlist .c-id").inner_text() == "1"
        page.click(".chip[data-flips='fixed']")
        _wait_rows(page, 2)
        _row_of(page, "2").click()
        page.wait_for_selector(".side .turn")
        sides = page.locator(".side")
        assert sides.count() == 2
        assert sides.nth(0).locator(".head .muted").first.inner_text() == "A: run-a"
        assert sides.nth(1).locator(".head .muted").first.inner_text() == "B: run-b"
        assert sides.nth(0).locator(".tool-result.failure").count() == 1  # A's tool call failed
        assert sides.nth(1).locator(".turn").count() == 2 and sides.nth(1).locator(".badge.correct").count() == 1
        assert sides.nth(0).locator(".answers pre").first.inner_text().endswith("\nAnswer: I do not know")
        assert sides.nth(1).locator(".answers pre").first.inner_text().endswith("\nAnswer: Jupiter")


def test_a_trajectory_file_from_solve_json(page: Any, runs: dict[str, Path]) -> None:
    with serve(runs["trajectory"], cwd=runs["root"]) as url:
        page.goto(url)
        page.wait_for_selector(".turn")
        assert page.locator("h2.query").inner_text() == "Who wrote Dune?"
        # analysis, then per turn the plan and the verdict (base_generator needs no executor call), the answer
        assert page.locator(".turn").count() == 2 and page.locator(".call").count() == 6


def _a_solve(runs: dict[str, Path]) -> Trajectory:
    """One recorded solve, to edit into a case the recorded run lacks."""
    return RunDir(runs["a"]).read()[("bamboogle", "1")].trajectory


def _written(runs: dict[str, Path], name: str, trajectory: Trajectory) -> tuple[Path, list[ModuleCall]]:
    """``trajectory`` as a ``solve --json`` file, and its calls in solver order (the viewer's ``data-call``)."""
    path = runs["root"] / name
    path.write_text(to_json(trajectory, indent=2))
    return path, list(trajectory.module_calls())


def test_an_answer_with_a_declined_offer_shows_both_generator_calls_in_the_solver_s_order(
    page: Any, runs: dict[str, Path]
) -> None:
    trajectory = _a_solve(runs)
    answer = trajectory.final_answer
    assert answer is not None and answer.call is not None
    offer = attrs.evolve(answer.call, purpose="choose_result", response='{"answer": "none of these"}')
    declined = attrs.evolve(trajectory, final_answer=attrs.evolve(answer, choice=offer))
    path, calls = _written(runs, "declined.json", declined)
    with serve(path, cwd=runs["root"]) as url:
        page.goto(url)
        page.wait_for_selector(".answers .call")
        assert page.locator(".call").count() == len(calls) == 7
        shown = page.locator(".answers .call").evaluate_all("els => els.map(e => Number(e.dataset.call))")
        assert shown == [calls.index(offer), calls.index(answer.call)] == [5, 6]
        assert "choose_result" in page.locator(".answers .call").first.inner_text()


def test_a_tools_own_calls_show_in_its_turn_in_the_solver_s_order(page: Any, runs: dict[str, Path]) -> None:
    """python_coder's expression is a call of the executor's, made inside the tool: between the turn's
    executor and its verdict, as ``Trajectory.module_calls()`` orders it (kept rollouts index by it)."""
    trajectory = _a_solve(runs)
    step = trajectory.steps[0]
    assert step.decision.call is not None
    written = '{"expression": "6 * 7"}'
    expression = attrs.evolve(step.decision.call, role="executor", purpose="expression", response=written)
    result = ToolSuccess("Output:\n42", value="42", calls=(expression,))
    steps = (attrs.evolve(step, result=result), *trajectory.steps[1:])
    path, calls = _written(runs, "tool-calls.json", attrs.evolve(trajectory, steps=steps))
    with serve(path, cwd=runs["root"]) as url:
        page.goto(url)
        page.wait_for_selector(".turn .call")
        assert page.locator(".call").count() == len(calls)
        first_turn = page.locator(".turn").first.locator(".call")
        shown = first_turn.evaluate_all("els => els.map(e => Number(e.dataset.call))")
        assert calls.index(expression) in shown
        assert "expression" in first_turn.nth(shown.index(calls.index(expression))).inner_text()
        assert shown == sorted(shown)  # the card lists its calls in the order they were made


@pytest.fixture(scope="module")
def training_run(runs: dict[str, Path]) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("accelerate")
    from agentflow_rl.flow_grpo.config import load_train_config
    from agentflow_rl.flow_grpo.testing import write_config
    from agentflow_rl.flow_grpo.trainer import train

    output = runs["root"] / "train"
    config = write_config(
        runs["root"] / "train.toml",
        {
            # Two trained modules, so the run logs module/<role>/<metric> for each.
            "train": {"modules": ["planner", "verifier"]},
            "task": {"verifier": "synthetic_compact"},
            "policy": {"lora": {"r": 4, "alpha": 8.0}},
            "rollout": {"group_size": 4, "questions_per_step": 2, "temperature": 1.0, "max_new_tokens": 8},
            "optim": {"lr": 1e-2, "micro_batch_turns": 16},
            "run": {"output_dir": str(output), "max_steps": 3, "eval_every": 1, "eval_questions": 4},
        },
    )
    settings = load_train_config(config, {"run.trackers": [], "run.checkpoint_every": 0})
    off_the_loop(lambda: train(settings))
    return output


def test_a_training_run_shows_its_curves_and_the_rollouts_it_kept(page: Any, training_run: Path) -> None:
    with serve(training_run, cwd=training_run.parent) as url:
        page.goto(url)
        page.wait_for_selector(".curve")
        for metric in ("eval/success", "train/reward", "loss/kl", "loss/entropy", "train/tool_error_rate"):
            assert page.locator(f".curve[data-metric='{metric}'] path.series").count() == 1, metric
        points = page.locator(".curve[data-metric='eval/success'] circle").count()
        assert points == 4  # before the first step and after each of three
        for role in ("planner", "verifier"):
            curves = page.locator(f".module-curves[data-module='{role}'] .curve")
            shown = set(curves.evaluate_all("els => els.map(e => e.dataset.metric)"))
            assert {f"module/{role}/{m}" for m in ("kl", "reward", "entropy", "parse_error_rate")} <= shown
        page.click(".steps a.chip:text-is('2')")
        page.wait_for_function("() => location.hash === '#/train/0/step/2'")
        page.wait_for_selector("details.sample")
        kept = read_kept_rollouts(kept_path(training_run, 2))
        assert page.locator("details.sample").count() == len(kept) == 4
        page.locator("details.sample[data-sample='0'] > summary").click()
        page.wait_for_selector(".call.trained")
        assert page.locator("details.sample[data-sample='0'] .call.trained").count() == len(kept[0].trained_calls)
        tag = page.locator(".call.trained .trained-tag").first.inner_text()
        assert tag == f"trained · advantage {kept[0].advantages[0]:.3f}"
        summary = page.locator("details.sample[data-sample='0'] > summary").inner_text()
        assert f"reward {kept[0].reward:.3f}" in summary


def test_rows_written_while_the_page_is_open_appear_without_a_reload(
    page: Any, runs: dict[str, Path], tmp_path: Path
) -> None:
    lines = (runs["a"] / "results.jsonl").read_text().splitlines(keepends=True)
    live = tmp_path / "live"
    live.mkdir()
    shutil.copy(runs["a"] / "run.json", live / "run.json")
    results = live / "results.jsonl"
    results.write_text("".join(lines[:3]))
    with serve(live, cwd=tmp_path) as url:
        page.goto(url)
        _wait_rows(page, 3)
        page.evaluate("window.__same_page = true")
        with results.open("a") as out:  # a line half written, as a reader can catch one
            out.write(lines[3][:60])
            out.flush()
            polls = int(page.evaluate("document.body.dataset.polls || 0"))
            page.wait_for_function(f"() => Number(document.body.dataset.polls || 0) >= {polls + 2}")
            assert _rows(page).count() == 3
            out.write(lines[3][60:] + lines[4])
        _wait_rows(page, 5)
        assert page.locator(".count").inner_text() == "5 of 5 queries"
        first_n = "document.querySelector('table.summary tbody td:nth-child(2)').textContent"
        page.wait_for_function(f"() => {first_n} === '5'")
        with results.open("a") as out:
            out.write(lines[5])
        _wait_rows(page, 6)
        assert page.evaluate("window.__same_page") is True


def test_a_comparison_follows_a_run_that_is_still_writing(page: Any, runs: dict[str, Path], tmp_path: Path) -> None:
    lines = (runs["b"] / "results.jsonl").read_text().splitlines(keepends=True)
    live = tmp_path / "run-b"
    live.mkdir()
    shutil.copy(runs["b"] / "run.json", live / "run.json")
    results = live / "results.jsonl"
    results.write_text(lines[0])
    with serve(runs["a"], live, cwd=tmp_path) as url:
        page.goto(url)
        page.wait_for_selector("table.summary")
        page.evaluate("window.__same_page = true")
        b_cell = "document.querySelector('table.summary tbody td:nth-child(3)').textContent"
        with results.open("a") as out:
            out.write("".join(lines[1:]))
        page.wait_for_function(f"() => {b_cell} === '66.7'")  # B's accuracy over all six items
        _wait_rows(page, 2)
        assert sorted(page.locator(".vlist .c-id").all_inner_texts()) == ["2", "3"]
        assert page.locator(".card .muted", has_text="flipped").inner_text().startswith("3 flipped, 3 the same")
        page.click(".chip[data-flips='broken']")
        _wait_rows(page, 1)
        assert page.locator(".vlist .c-id").inner_text() == "1"
        assert page.evaluate("window.__same_page") is True


def test_an_export_opens_from_disk(page: Any, runs: dict[str, Path], tmp_path: Path) -> None:
    site = tmp_path / "site"
    result = run_agentflow("view", str(runs["a"]), str(runs["b"]), "--export", str(site), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    page.goto((site / "index.html").as_uri())
    _wait_rows(page, 2)  # the comparison of the two runs
    page.goto((site / "index.html").as_uri() + "#/eval/0")
    _wait_rows(page, 6)
    assert page.locator("#live").inner_text() == "static export · 6 queries"
    page.click(".chip[data-outcome='wrong']")
    _wait_rows(page, 3)
    _row_of(page, XSS_ITEM).click()
    page.wait_for_selector(".turn")
    assert page.locator(".turn .tool-result pre").inner_text() == XSS_PAYLOAD
    assert page.evaluate("window.__pwned") is None


def test_each_turn_shows_the_tools_it_was_offered_with_their_fits(page: Any, runs: dict[str, Path]) -> None:
    """Why the menu was ordered so: each tool's word on the question, its evidence kept as text."""
    trajectory = _a_solve(runs)
    fits = {
        "local_search": ToolFit(Fit.CLAIMS, "a passage names Dov Kesante"),
        "base_generator": ToolFit(),
        "python_coder": ToolFit(Fit.CANNOT, XSS_PAYLOAD),
    }
    steps = (attrs.evolve(trajectory.steps[0], tool_fits=fits), *trajectory.steps[1:])
    path, _ = _written(runs, "fits.json", attrs.evolve(trajectory, steps=steps))
    with serve(path, cwd=runs["root"]) as url:
        page.goto(url)
        page.wait_for_selector(".turn .fits")
        shown = page.locator(".turn").first.locator(".fits li").all_inner_texts()
        assert shown == [
            "local_search: claims (a passage names Dov Kesante)",
            "base_generator: may",
            f"python_coder: cannot ({XSS_PAYLOAD})",
        ]
        assert page.locator(".fit.claims").count() == 1 and page.locator(".fit.cannot").count() == 1
        assert page.evaluate("window.__pwned") is None and page.title() != "pwned"
        assert page.locator("main img, main script, main a[href^='javascript']").count() == 0

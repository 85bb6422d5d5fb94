"""Draw the screenshots in docs/viewer/ from runs made the way the tests make them.

    python docs/viewer/make_screenshots.py          # from the repository root; needs chromium and playwright

Two evaluation runs through the real eval runner on a scripted server, a short Flow-GRPO run
of the tiny policy, each served by ``agentflow view`` and photographed in headless Chromium.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from agentflow_rl.flow_grpo import trainer  # noqa: E402
from agentflow_rl.flow_grpo.config import load_train_config  # noqa: E402
from agentflow_rl.flow_grpo.testing import write_config  # noqa: E402
from tests.view_support import XSS_ITEM, FlowScript, make_eval_run, serve, write_data  # noqa: E402

OUT = ROOT / "docs" / "viewer"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"]


def train(root: Path) -> Path:
    output = root / "flow-grpo-tiny"
    config = write_config(
        root / "train.toml",
        {
            "rollout": {"group_size": 8, "questions_per_step": 8, "temperature": 1.0, "max_new_tokens": 8},
            "optim": {"lr": 1e-2, "micro_batch_turns": 64},
            "run": {"output_dir": str(output), "max_steps": 12, "eval_every": 2, "eval_questions": 40},
        },
    )
    trainer.train(load_train_config(config, {"run.trackers": [], "run.checkpoint_every": 0}))
    return output


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        data = write_data(root / "data")
        run_a = make_eval_run(root / "agent-v1", data, FlowScript({"0", "1", "5"}, {"1", "3"}, {"2"}))
        run_b = make_eval_run(root / "agent-v2", data, FlowScript({"0", "2", "3", "5"}, {"2"}))
        training = train(root)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=FLAGS)
            page = browser.new_page(viewport={"width": 1360, "height": 900})
            with serve(run_a, cwd=root) as url:
                page.goto(url + "#/eval/0?outcome=wrong")
                page.wait_for_selector(".vlist .qrow")
                page.screenshot(path=OUT / "run.png", full_page=True)
                page.goto(url + "#/eval/0/item/1")
                page.wait_for_selector(".turn")
                page.locator(".turn .call").first.locator("summary").click()
                page.evaluate("window.scrollTo(0, 0)")
                page.screenshot(path=OUT / "trajectory.png", full_page=True)
                page.goto(url + "#/eval/0?q=atlantis")
                page.wait_for_selector(".vlist .qrow")
                page.click(".vlist .qrow")
                page.wait_for_selector(".turn")
                page.locator(".turn").screenshot(path=OUT / f"tool-result-as-text-item{XSS_ITEM}.png")
            with serve(run_a, run_b, cwd=root) as url:
                page.goto(url)
                page.wait_for_selector(".vlist .qrow")
                page.screenshot(path=OUT / "compare.png", full_page=True)
                page.click(".vlist .qrow")
                page.wait_for_selector(".side .turn")
                page.screenshot(path=OUT / "compare-item.png")
            with serve(training, cwd=root) as url:
                page.goto(url + "#/train/0/step/10")
                page.wait_for_selector("details.sample")
                page.click("details.sample[data-sample='0'] > summary")
                page.wait_for_selector(".call.trained")
                page.evaluate("window.scrollTo(0, 0)")
                page.screenshot(path=OUT / "training.png", full_page=True)
            browser.close()
    for png in sorted(OUT.glob("*.png")):
        print(png.relative_to(ROOT), png.stat().st_size)


if __name__ == "__main__":
    main()

/* A Flow-GRPO run: learning curves from metrics.jsonl (growing while it trains), per-module
 * curves for metrics named module/<role>/<metric>, and the rollouts kept for chosen steps with
 * their rewards and advantages, the trained module's calls highlighted. */
"use strict";
window.AF = window.AF || {};

(function () {
  const { h, fmt } = AF;
  const MAIN = [
    ["eval/success", "held-out success", { yMin: 0, yMax: 1 }],
    ["train/reward", "mean training reward", {}],
    ["loss/kl", "KL to the reference", {}],
    ["loss/entropy", "entropy", {}],
    ["train/tool_error_rate", "tool-error rate", { yMin: 0 }],
  ];
  const MODULE = /^module\/([^/]+)\/(.+)$/;

  function points(rows, key) {
    return rows.filter((r) => typeof r[key] === "number" || r[key] === null).filter((r) => key in r).map((r) => [r.step, r[key]]);
  }

  function chart(rows, key, title, options) {
    return h("div", { class: "curve", "data-metric": key }, AF.lineChart([{ name: key, points: points(rows, key) }], { title: `${title} (${key})`, ...options }));
  }

  function curves(rows) {
    const keys = new Set(rows.flatMap((r) => Object.keys(r)));
    const main = MAIN.filter(([key]) => keys.has(key)).map(([key, title, options]) => chart(rows, key, title, options));
    const modules = {};
    for (const key of keys) {
      const found = MODULE.exec(key);
      if (found) (modules[found[1]] = modules[found[1]] || []).push(key);
    }
    const moduleBoxes = Object.keys(modules).sort().map((role) => h("section", { class: "module-curves", "data-module": role },
      h("h3", {}, `module: ${role}`), h("div", { class: "curve-grid" }, modules[role].sort().map((key) => chart(rows, key, key.replace(MODULE, "$2"), {})))));
    const shown = new Set([...MAIN.map(([k]) => k), ...Object.values(modules).flat(), "step", "time"]);
    const others = [...keys].filter((k) => !shown.has(k) && rows.some((r) => typeof r[k] === "number")).sort();
    const more = h("details", { class: "more-curves" }, h("summary", {}, `all other metrics (${others.length})`));
    more.addEventListener("toggle", () => {
      if (more.open && more.children.length === 1) AF.add(more, h("div", { class: "curve-grid" }, others.map((k) => chart(rows, k, k, {}))));
    }, { once: false });
    return [h("div", { class: "curve-grid" }, main.length ? main : h("p", { class: "muted" }, "no metrics logged yet")), ...moduleBoxes, more];
  }

  function sampleCard(sample, index) {
    const trained = new Map(sample.trained_calls.map((call, k) => [call, sample.advantages[k] ?? 0]));
    const advantage = sample.advantages.length ? sample.advantages[0] : 0;
    const body = h("div", { class: "sample-body" });
    const details = h("details", { class: "sample", "data-sample": index },
      h("summary", {}, h("span", { class: "strong" }, `group ${sample.group}`), ` · reward ${fmt.num(sample.reward, 3)} · advantage ${fmt.num(advantage, 3)}`,
        ` · ${sample.trained_calls.length} trained call(s) of ${[...new Set(sample.trained_roles)].join(", ") || "none"} · `, h("span", { class: "sample-q" }, sample.question)),
      body);
    details.addEventListener("toggle", () => {
      if (details.open && !body.children.length) {
        AF.add(body, AF.renderTrajectory(sample.trajectory, { trained, title: `step ${sample.step} · gold: ${sample.gold.join(" | ")}` }));
      }
    });
    return details;
  }

  async function samplesBox(id, steps, chosen, ctx) {
    const box = h("section", { class: "card" }, h("h3", {}, "Sample rollouts"));
    if (!steps.length) {
      AF.add(box, h("p", { class: "muted" }, "this run kept no rollouts ([run] sample_rollouts = 0, or a run older than the viewer)"));
      return box;
    }
    const step = steps.includes(chosen) ? chosen : steps[steps.length - 1];
    AF.add(box, h("div", { class: "steps" }, "step: ", steps.map((s) => h("a", { class: "chip" + (s === step ? " on" : ""), href: `#/train/${id}/step/${s}` }, s))));
    const data = await AF.load(`train/${id}/samples/${step}`);
    AF.add(box, h("p", { class: "muted" }, `${data.samples.length} rollout(s) kept at step ${step}; the trained module's calls are highlighted`),
      data.samples.map(sampleCard));
    return box;
  }

  AF.pages.train = async function (main, ctx, id, step) {
    const feed = new AF.Feed(`train/${id}/metrics`);
    const [info] = await Promise.all([AF.load(`train/${id}/info`), feed.poll()]);
    ctx.crumbs([[`#/train/${id}`, info.name]]);
    const curveBox = h("section", { class: "card" }, h("h3", {}, "Learning curves"), curves(feed.rows));
    const config = info.config ? h("details", {}, h("summary", {}, "config"), h("table", { class: "compact" }, h("tbody", {},
      Object.entries(info.config).map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, String(v))))))) : null;
    const checkpoints = h("p", { class: "muted" }, "checkpoints: ", info.checkpoints.map((c) => c.name + (c.complete ? "" : " (incomplete)")).join(", ") || "none");
    let samples = await samplesBox(id, info.sample_steps, step === undefined ? undefined : Number(step), ctx);
    AF.fill(main, h("h1", {}, info.name), h("p", { class: "muted info" }, info.path), checkpoints, config, curveBox, samples);
    let known = info.sample_steps.join(",");
    ctx.every(2000, async () => {
      if (await feed.poll()) AF.fill(curveBox, h("h3", {}, "Learning curves"), curves(feed.rows));
      const now = await AF.load(`train/${id}/info`);
      if (now.sample_steps.join(",") !== known && step === undefined) {
        known = now.sample_steps.join(",");
        const fresh = await samplesBox(id, now.sample_steps, undefined, ctx);
        samples.replaceWith(fresh);
        samples = fresh;
      }
    });
  };
})();

/* One trajectory: the query and its score, the planner's analysis, one card per turn, the
 * answers, every module call (engine, tokens, latency, full prompt and raw response one click
 * away) and a timeline of where the time went. Used by the run, compare and training views. */
"use strict";
window.AF = window.AF || {};

(function () {
  const { h, fmt } = AF;

  /* Every module call in the order the solver made them (Trajectory.module_calls()). */
  AF.moduleCalls = function (t) {
    const calls = [];
    if (t.analysis && t.analysis.call) calls.push(t.analysis.call);
    for (const step of t.steps) {
      for (const part of [step.decision, step.tool_call]) if (part && part.call) calls.push(part.call);
      for (const call of step.result.calls || []) calls.push(call); /* the tool's own LLM calls (python_coder's) */
      if (step.verdict && step.verdict.call) calls.push(step.verdict.call);
    }
    if (t.unfinished) {
      for (const part of [t.unfinished.decision, t.unfinished.tool_call]) if (part && part.call) calls.push(part.call);
    }
    for (const answer of [t.final_answer, t.direct_answer]) {
      if (!answer) continue;
      for (const call of [answer.choice, answer.call]) if (call) calls.push(call); /* a declined offer first */
    }
    return calls;
  };

  function tokens(call) {
    const u = call.usage || {};
    return `${fmt.int(u.prompt_tokens || 0)} + ${fmt.int(u.completion_tokens || 0)} tok`;
  }

  function callBlock(call, ctx) {
    const index = ctx.calls.indexOf(call);
    const trained = ctx.trained.has(index);
    const meta = h("div", { class: "call-meta" },
      h("span", { class: "role " + call.role }, call.role), " ", call.purpose, " · ", call.engine, " · ",
      tokens(call), " · ", fmt.secs(call.latency_s || 0),
      trained ? h("span", { class: "trained-tag" }, "trained · advantage " + fmt.num(ctx.trained.get(index), 3)) : null,
      call.parse_error ? h("span", { class: "parse-error" }, " parse error: ", call.parse_error) : null);
    const raw = h("details", { class: "raw" }, h("summary", {}, "prompt & response"),
      ...(call.messages || []).map((m) => h("div", { class: "message" }, h("div", { class: "message-role" }, m.role),
        h("pre", {}, m.content))),
      h("div", { class: "message" }, h("div", { class: "message-role" }, "response"), h("pre", {}, call.response)));
    return h("div", { class: "call" + (trained ? " trained" : ""), "data-call": index }, meta, raw);
  }

  function field(name, ...value) {
    return h("div", { class: "field" }, h("span", { class: "field-name" }, name), h("span", { class: "field-value" }, ...value));
  }

  function result(r) {
    if (r._type === "ToolFailure") {
      return h("div", { class: "tool-result failure" }, h("div", { class: "result-head" }, "tool error: " + r.kind,
        " · ", fmt.secs(r.elapsed_s || 0)), h("pre", {}, r.error));
    }
    return h("div", { class: "tool-result" }, h("div", { class: "result-head" }, "tool result · ", fmt.secs(r.elapsed_s || 0)),
      h("pre", {}, r.output));
  }

  // What each tool said of the question before this turn's planner chose (Step.tool_fits), in menu order.
  function fitsField(fits) {
    const names = Object.keys(fits || {});
    if (!names.length) return null;
    return field("tools offered", h("ul", { class: "fits" }, ...names.map((name) => {
      const f = fits[name];
      return h("li", { class: "fit " + f.fit }, name, ": ", f.fit, f.why ? " (" + f.why + ")" : "");
    })));
  }

  function turnCard(step, ctx) {
    const d = step.decision, c = step.tool_call, v = step.verdict;
    return h("section", { class: "card turn" },
      h("h3", {}, `Turn ${step.index}`, h("span", { class: "tool-name" }, d.tool)),
      field("sub-goal", d.sub_goal),
      d.context ? field("context", d.context) : null,
      fitsField(step.tool_fits),
      d.call ? callBlock(d.call, ctx) : null,
      h("h4", {}, "Executor"),
      c.explanation ? field("explanation", c.explanation) : null,
      field("arguments", h("pre", { class: "args" }, fmt.json(c.arguments))),
      c.call ? callBlock(c.call, ctx) : null,
      ...(step.result.calls || []).map((call) => callBlock(call, ctx)),
      result(step.result),
      h("h4", {}, "Verifier"),
      v ? field("verdict", h("span", { class: "verdict " + v.decision }, v.decision)) : field("verdict", "none (the loop stopped first)"),
      v && v.analysis ? field("reasoning", v.analysis) : null,
      v && v.call ? callBlock(v.call, ctx) : null);
  }

  function timeline(t) {
    const parts = [];
    const add = (label, kind, seconds) => parts.push({ label, kind, seconds: Math.max(0, seconds || 0) });
    if (t.analysis && t.analysis.call) add("planner: analyze", "planner", t.analysis.call.latency_s);
    for (const step of t.steps) {
      if (step.decision.call) add(`turn ${step.index}: planner`, "planner", step.decision.call.latency_s);
      if (step.tool_call.call) add(`turn ${step.index}: executor`, "executor", step.tool_call.call.latency_s);
      add(`turn ${step.index}: ${step.tool_call.tool}`, "tool", step.result.elapsed_s);
      if (step.verdict && step.verdict.call) add(`turn ${step.index}: verifier`, "verifier", step.verdict.call.latency_s);
    }
    if (t.final_answer && t.final_answer.choice) add("generator: values offered", "generator", t.final_answer.choice.latency_s);
    if (t.final_answer && t.final_answer.call) add("generator: final answer", "generator", t.final_answer.call.latency_s);
    if (t.direct_answer && t.direct_answer.call) add("generator: direct answer", "generator", t.direct_answer.call.latency_s);
    const counted = parts.reduce((sum, p) => sum + p.seconds, 0);
    const total = Math.max(t.elapsed_s || 0, counted, 1e-9);
    if (total - counted > 0.0005 * total) add("other (between calls)", "other", total - counted);
    const bar = h("div", { class: "timeline-bar" });
    for (const p of parts) {
      const seg = h("div", { class: "seg " + p.kind, title: `${p.label}: ${fmt.secs(p.seconds)}` });
      seg.style.width = (100 * p.seconds) / total + "%";
      bar.append(seg);
    }
    const byKind = {};
    for (const p of parts) byKind[p.kind] = (byKind[p.kind] || 0) + p.seconds;
    const legend = h("div", { class: "legend" }, Object.entries(byKind).map(([kind, seconds]) =>
      h("span", { class: "legend-item" }, h("span", { class: "swatch " + kind }), `${kind} ${fmt.secs(seconds)} (${fmt.num((100 * seconds) / total, 0)}%)`)));
    const rows = parts.map((p) => h("tr", {}, h("td", {}, p.label), h("td", { class: "num" }, fmt.secs(p.seconds))));
    return h("section", { class: "card" }, h("h3", {}, "Where the time went", h("span", { class: "muted" }, ` ${fmt.secs(total)} in all`)),
      bar, legend, h("details", {}, h("summary", {}, "each piece"), h("table", { class: "compact" }, h("tbody", {}, rows))));
  }

  function callsTable(ctx) {
    const rows = ctx.calls.map((call, i) => h("tr", { class: ctx.trained.has(i) ? "trained" : "" },
      h("td", { class: "num" }, i + 1), h("td", {}, call.role), h("td", {}, call.purpose), h("td", {}, call.engine),
      h("td", { class: "num" }, fmt.int(call.usage.prompt_tokens)), h("td", { class: "num" }, fmt.int(call.usage.completion_tokens)),
      h("td", { class: "num" }, fmt.secs(call.latency_s || 0)), h("td", {}, call.parse_error || "")));
    return h("section", { class: "card" }, h("h3", {}, "Module calls"),
      h("table", { class: "compact" }, h("thead", {}, h("tr", {}, ["#", "module", "purpose", "engine", "prompt tok", "completion tok", "latency", "parse error"].map((x) => h("th", {}, x)))),
        h("tbody", {}, rows)));
  }

  function header(t, record, title) {
    const score = record && record.score;
    return h("section", { class: "card head" },
      title ? h("div", { class: "muted" }, title) : null,
      h("h2", { class: "query" }, t.query.text),
      t.query.id ? field("id", t.query.id) : null,
      record ? field("gold", record.gold.join(" | ")) : null,
      score ? field("score", AF.badge(score.correct ? "correct" : "wrong"), ` value ${fmt.num(score.value, 3)} · ${score.method}`,
        score.extracted ? ` · extracted: ${score.extracted}` : "") : null,
      record && record.judge ? field("judge", AF.badge(record.judge.correct ? "correct" : "wrong"), " ", record.judge.extracted || "") : null,
      record && record.error ? field("error", h("span", { class: "error-text" }, record.error)) : null,
      t.error ? field("solve error", h("span", { class: "error-text" }, t.error)) : null,
      field("stopped", t.stop_reason, ` after ${t.steps.length} turn(s), ${fmt.secs(t.elapsed_s || 0)}`),
      Object.keys(t.engines || {}).length ? field("engines", Object.entries(t.engines).map(([k, v]) => `${k}=${v}`).join(", ")) : null);
  }

  function answers(t, ctx) {
    const card = h("section", { class: "card answers" }, h("h3", {}, "Answers"));
    for (const [name, answer] of [["final answer", t.final_answer], ["direct answer", t.direct_answer]]) {
      if (!answer) continue;
      AF.add(card, field(name, h("pre", { class: "answer" }, answer.text)));
      if (answer.choice) AF.add(card, callBlock(answer.choice, ctx));
      if (answer.call) AF.add(card, callBlock(answer.call, ctx));
    }
    if (!t.final_answer && !t.direct_answer) AF.add(card, h("p", { class: "muted" }, "no answer was written"));
    return card;
  }

  /* options: {record, title, trained: Map(call index -> advantage)} */
  AF.renderTrajectory = function (t, options = {}) {
    const record = options.record || null;
    if (!t) {
      return h("div", { class: "trajectory" }, header({ query: { text: record ? record.question : "" }, steps: [], stop_reason: "none" }, record, options.title),
        h("p", { class: "muted" }, "no trajectory was recorded (the query failed before the solver ran)"));
    }
    const ctx = { calls: AF.moduleCalls(t), trained: options.trained || new Map() };
    const analysis = t.analysis && (t.analysis.text || t.analysis.call)
      ? h("section", { class: "card" }, h("h3", {}, "Planner's analysis"), h("pre", { class: "prose" }, t.analysis.text),
        t.analysis.call ? callBlock(t.analysis.call, ctx) : null)
      : null;
    return h("div", { class: "trajectory" }, header(t, record, options.title), timeline(t), analysis,
      t.steps.map((step) => turnCard(step, ctx)), answers(t, ctx), callsTable(ctx));
  };
})();

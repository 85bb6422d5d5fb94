/* An evaluation run: the summary per benchmark, the accuracy chart, and the query list with
 * its filters. While the run is being written the page polls for rows appended since it last
 * looked; a row opens its trajectory. */
"use strict";
window.AF = window.AF || {};

(function () {
  const { h, fmt } = AF;

  function summaryTable(summary) {
    const judged = summary.benchmarks.some((b) => b.judge_accuracy !== null);
    const head = ["benchmark", "n", "accuracy %", "mean score", ...(judged ? ["judge %"] : []), "errors", "turns",
      "tool calls/q", "tool errors %", "tokens/q", "s/query", "p50 / p95 s"];
    const rows = summary.benchmarks.map((b) => {
      const tokens = Object.values(b.tokens).reduce((sum, t) => sum + t.prompt + t.completion, 0);
      return h("tr", {}, h("td", {}, b.benchmark), h("td", { class: "num" }, b.n), h("td", { class: "num strong" }, fmt.pct(b.accuracy)),
        h("td", { class: "num" }, fmt.num(b.mean_value, 3)), judged ? h("td", { class: "num" }, fmt.pct(b.judge_accuracy)) : null,
        h("td", { class: "num" }, b.errors), h("td", { class: "num" }, fmt.num(b.mean_turns)),
        h("td", { class: "num" }, fmt.num(b.tool_calls / b.n)), h("td", { class: "num" }, fmt.pct(b.tool_error_rate)),
        h("td", { class: "num" }, fmt.int(tokens)), h("td", { class: "num" }, fmt.num(b.mean_latency_s, 1)),
        h("td", { class: "num" }, `${fmt.num(b.latency_p50_s, 1)} / ${fmt.num(b.latency_p95_s, 1)}`));
    });
    rows.push(h("tr", { class: "macro" }, h("td", {}, "macro"), h("td", {}), h("td", { class: "num strong" }, fmt.pct(summary.macro_accuracy))));
    return h("table", { class: "summary" }, h("thead", {}, h("tr", {}, head.map((x) => h("th", {}, x)))), h("tbody", {}, rows));
  }

  function detailTables(summary) {
    const tools = [...new Set(summary.benchmarks.flatMap((b) => Object.keys(b.tools)))].sort();
    const roles = [...new Set(summary.benchmarks.flatMap((b) => Object.keys(b.tokens)))].sort();
    const out = [];
    if (tools.length) {
      out.push(h("table", { class: "compact" }, h("thead", {}, h("tr", {}, h("th", {}, "tool calls (errors)"), tools.map((t) => h("th", {}, t)))),
        h("tbody", {}, summary.benchmarks.map((b) => h("tr", {}, h("td", {}, b.benchmark),
          tools.map((t) => h("td", { class: "num" }, b.tools[t] ? `${b.tools[t].calls} (${b.tools[t].errors})` : "0")))))));
    }
    if (roles.length) {
      out.push(h("table", { class: "compact" }, h("thead", {}, h("tr", {}, h("th", {}, "tokens/q prompt / completion"), roles.map((r) => h("th", {}, r)))),
        h("tbody", {}, summary.benchmarks.map((b) => h("tr", {}, h("td", {}, b.benchmark),
          roles.map((r) => h("td", { class: "num" }, b.tokens[r] ? `${fmt.int(b.tokens[r].prompt)} / ${fmt.int(b.tokens[r].completion)}` : "–")))))));
    }
    return out;
  }

  function infoLine(summary) {
    const info = summary.info;
    const parts = [summary.path];
    if (info) {
      parts.push(`mode ${info.mode}`, `seed ${info.seed}`, `limit ${info.limit ?? "all"}`, `tools: ${(info.tools || []).join(", ") || "none"}`);
      const engines = Object.entries(info.engines || {}).map(([k, v]) => `${k}=${v}`).join(", ");
      if (engines) parts.push(`engines: ${engines}`);
    }
    if (summary.skipped_lines) parts.push(`${summary.skipped_lines} line(s) of results.jsonl did not parse`);
    return h("p", { class: "muted info" }, parts.join(" · "));
  }

  function select(name, value, options, onchange) {
    return h("label", { class: "control" }, name + " ",
      h("select", { name, onchange: (e) => onchange(e.target.value) },
        options.map(([v, text]) => h("option", { value: v, selected: String(value ?? "") === String(v) }, text))));
  }

  AF.rowView = function (href) {
    return (row) => h("a", { class: "qrow", href: href(row), "data-outcome": AF.outcome(row) },
      h("span", { class: "c-n num" }, row.i + 1), h("span", { class: "c-bench" }, row.benchmark), h("span", { class: "c-id" }, row.id),
      h("span", { class: "c-out" }, AF.badge(AF.outcome(row))), h("span", { class: "c-q" }, row.question),
      h("span", { class: "c-a" }, row.error && !row.answer ? row.error : row.answer), h("span", { class: "c-g" }, (row.gold || []).join(" | ")),
      h("span", { class: "c-t num" }, row.turns), h("span", { class: "c-tools" }, row.tools.join(", ") + (row.tool_errors ? ` (${row.tool_errors} err)` : "")),
      h("span", { class: "c-tok num" }, fmt.int(row.tokens)), h("span", { class: "c-s num" }, fmt.num(row.elapsed, 1)));
  };

  AF.listHeader = function () {
    return h("div", { class: "qrow qhead" }, ["#", "benchmark", "id", "outcome", "question", "answer", "gold", "turns", "tools", "tokens", "s"].map((x, k) =>
      h("span", { class: ["c-n", "c-bench", "c-id", "c-out", "c-q", "c-a", "c-g", "c-t", "c-tools", "c-tok", "c-s"][k] }, x)));
  };

  AF.pages.eval = async function (main, ctx, id) {
    const feed = new AF.Feed(`eval/${id}/rows`);
    const [summary] = await Promise.all([AF.load(`eval/${id}/summary`), feed.poll()]);
    const filters = ctx.query;
    const summaryBox = h("div", {});
    const chartBox = h("div", { class: "chart-box" });
    const count = h("span", { class: "count" });
    const list = new AF.VirtualList(AF.rowView((row) => `#/eval/${id}/item/${row.i}`));
    const controls = h("div", { class: "filters" });

    function drawSummary(s) {
      AF.fill(summaryBox, summaryTable(s), ...detailTables(s));
      AF.fill(chartBox, AF.barChart(s.benchmarks.map((b) => ({ label: b.benchmark, values: [b.accuracy] })), [s.name], { title: "accuracy per benchmark (%)" }));
    }

    function set(key, value) {
      if (value === "" || value === null) delete filters[key];
      else filters[key] = value;
      ctx.setQuery(filters);
      drawList();
    }

    const search = h("input", { type: "search", name: "q", placeholder: "search question, answer, gold, id", value: filters.q || "",
      oninput: (e) => set("q", e.target.value) });
    const choices = h("span", { class: "choices" });
    let drawnFacets = null;

    function drawControls() {
      const f = AF.facets(feed.rows);
      const key = JSON.stringify([f, filters.outcome, filters.benchmark, filters.tool, filters.turns, filters.sort, filters.dir]);
      if (key === drawnFacets) return;
      drawnFacets = key;
      const outcomes = h("div", { class: "chips" }, ["", "correct", "wrong", "error"].map((o) =>
        h("button", { class: "chip" + ((filters.outcome || "") === o ? " on" : ""), "data-outcome": o || "all",
          onclick: () => { set("outcome", o); drawControls(); } }, o || "all")));
      AF.fill(choices, outcomes,
        select("benchmark", filters.benchmark, [["", "all"], ...f.benchmarks.map((b) => [b, b])], (v) => set("benchmark", v)),
        select("tool", filters.tool, [["", "any"], ["(none)", "none"], ...f.tools.map((t) => [t, t])], (v) => set("tool", v)),
        select("turns", filters.turns, [["", "any"], ...Array.from({ length: f.maxTurns + 1 }, (_, k) => [k, k])], (v) => set("turns", v)),
        select("sort", filters.sort || "file", AF.SORTS.map((k) => [k, k === "file" ? "file order" : k]), (v) => set("sort", v)),
        select("dir", filters.dir || "asc", [["asc", "ascending"], ["desc", "descending"]], (v) => set("dir", v)));
    }
    AF.add(controls, choices, search, count);

    function drawList() {
      const kept = AF.applyFilters(feed.rows, filters);
      count.textContent = `${kept.length.toLocaleString("en-US")} of ${feed.rows.filter(Boolean).length.toLocaleString("en-US")} queries`;
      list.setItems(kept);
    }

    drawSummary(summary);
    AF.fill(main, h("h1", {}, summary.name), infoLine(summary),
      h("section", { class: "card" }, h("div", { class: "summary-layout" }, summaryBox, chartBox)),
      h("section", { class: "card" }, controls, AF.listHeader(), list.el));
    drawControls();
    drawList();
    ctx.crumbs([[`#/eval/${id}`, summary.name]]);

    const pulse = () => ctx.pulse(feed.extra.reading ? `reading results.jsonl… ${feed.rows.length.toLocaleString("en-US")} queries so far`
      : `${feed.rows.length.toLocaleString("en-US")} queries`);
    pulse();
    ctx.every(1000, async () => {
      const changed = await feed.poll();
      pulse();
      if (!changed) return;
      drawSummary(await AF.load(`eval/${id}/summary`));
      drawControls();
      drawList();
    });
  };

  AF.pages.evalItem = async function (main, ctx, id, n) {
    const [summary, record] = await Promise.all([AF.load(`eval/${id}/summary`), AF.load(`eval/${id}/record/${n}`)]);
    ctx.crumbs([[`#/eval/${id}`, summary.name], [`#/eval/${id}/item/${n}`, `${record.benchmark} / ${record.item_id}`]]);
    AF.fill(main, AF.renderTrajectory(record.trajectory, { record, title: `${summary.name} · ${record.benchmark} / ${record.item_id}` }));
  };
})();

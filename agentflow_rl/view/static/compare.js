/* Two evaluation runs over the same items: accuracy side by side, then the items whose score
 * flipped, each opening both trajectories next to each other. */
"use strict";
window.AF = window.AF || {};

(function () {
  const { h, fmt } = AF;
  const keyOf = (row) => row.benchmark + "\u0000" + row.id;

  function table(a, b) {
    const byA = Object.fromEntries(a.benchmarks.map((x) => [x.benchmark, x]));
    const byB = Object.fromEntries(b.benchmarks.map((x) => [x.benchmark, x]));
    const names = [...a.benchmarks.map((x) => x.benchmark), ...b.benchmarks.map((x) => x.benchmark).filter((n) => !(n in byA))];
    const rows = names.map((n) => {
      const x = byA[n], y = byB[n];
      const delta = x && y ? (100 * (y.accuracy - x.accuracy)).toFixed(1) : "–";
      return h("tr", {}, h("td", {}, n), h("td", { class: "num" }, fmt.pct(x && x.accuracy)), h("td", { class: "num" }, fmt.pct(y && y.accuracy)),
        h("td", { class: "num strong delta" }, x && y && y.accuracy >= x.accuracy ? "+" + delta : delta),
        h("td", { class: "num" }, `${x ? x.n : "–"} / ${y ? y.n : "–"}`), h("td", { class: "num" }, `${x ? fmt.num(x.mean_turns) : "–"} / ${y ? fmt.num(y.mean_turns) : "–"}`),
        h("td", { class: "num" }, `${x ? fmt.num(x.mean_latency_s, 1) : "–"} / ${y ? fmt.num(y.mean_latency_s, 1) : "–"}`));
    });
    const macro = (100 * (b.macro_accuracy - a.macro_accuracy)).toFixed(1);
    rows.push(h("tr", { class: "macro" }, h("td", {}, "macro"), h("td", { class: "num" }, fmt.pct(a.macro_accuracy)), h("td", { class: "num" }, fmt.pct(b.macro_accuracy)),
      h("td", { class: "num strong" }, (macro.startsWith("-") ? "" : "+") + macro)));
    const head = ["benchmark", `A: ${a.name} %`, `B: ${b.name} %`, "B − A", "n A / B", "turns A / B", "s/query A / B"];
    return { table: h("table", { class: "summary" }, h("thead", {}, h("tr", {}, head.map((x) => h("th", {}, x)))), h("tbody", {}, rows)), names, byA, byB };
  }

  function pairs(rowsA, rowsB) {
    const inB = new Map(rowsB.filter(Boolean).map((r) => [keyOf(r), r]));
    const out = { fixed: [], broken: [], same: 0, onlyA: 0, onlyB: 0 };
    const seen = new Set();
    for (const a of rowsA.filter(Boolean)) {
      const b = inB.get(keyOf(a));
      if (!b) { out.onlyA++; continue; }
      seen.add(keyOf(a));
      if (a.correct === b.correct) out.same++;
      else (b.correct ? out.fixed : out.broken).push({ a, b, i: out.fixed.length + out.broken.length });
    }
    out.onlyB = [...inB.keys()].filter((k) => !seen.has(k)).length;
    return out;
  }

  function pairRow(ids) {
    return (p) => h("a", { class: "qrow pair", href: `#/compare/${ids[0]}/${ids[1]}/item/${p.a.i}/${p.b.i}` },
      h("span", { class: "c-bench" }, p.a.benchmark), h("span", { class: "c-id" }, p.a.id),
      h("span", { class: "c-out" }, AF.badge(AF.outcome(p.a))), h("span", { class: "c-out" }, AF.badge(AF.outcome(p.b))),
      h("span", { class: "c-q" }, p.a.question), h("span", { class: "c-a" }, p.a.answer), h("span", { class: "c-a" }, p.b.answer),
      h("span", { class: "c-g" }, (p.a.gold || []).join(" | ")));
  }

  AF.pages.compare = async function (main, ctx, ia, ib) {
    const feeds = [new AF.Feed(`eval/${ia}/rows`), new AF.Feed(`eval/${ib}/rows`)];
    const summaries = () => Promise.all([AF.load(`eval/${ia}/summary`), AF.load(`eval/${ib}/summary`)]);
    const [[a, b]] = await Promise.all([summaries(), ...feeds.map((f) => f.poll())]);
    ctx.crumbs([[`#/compare/${ia}/${ib}`, `compare ${a.name} ↔ ${b.name}`]]);
    const which = ctx.query.flips === "broken" ? "broken" : "fixed";
    const summaryBox = h("div", { class: "summary-layout" });
    const flipsBox = h("div", {});
    const list = new AF.VirtualList(pairRow([ia, ib]));

    /* Both runs may still be writing: the table, the chart and the flips are redrawn from what has
     * arrived, the list keeping its scroll position (setItems). */
    function draw(sa, sb) {
      const t = table(sa, sb);
      AF.fill(summaryBox, t.table, h("div", { class: "chart-box" }, AF.barChart(
        t.names.map((n) => ({ label: n, values: [t.byA[n] ? t.byA[n].accuracy : null, t.byB[n] ? t.byB[n].accuracy : null] })),
        [`A: ${sa.name}`, `B: ${sb.name}`], { title: "accuracy per benchmark (%)" })));
      const p = pairs(feeds[0].rows, feeds[1].rows);
      list.setItems(p[which]);
      const tabs = h("div", { class: "chips" }, [["fixed", `wrong in A → right in B (${p.fixed.length})`], ["broken", `right in A → wrong in B (${p.broken.length})`]].map(([k, text]) =>
        h("button", { class: "chip" + (k === which ? " on" : ""), "data-flips": k, onclick: () => { ctx.setQuery({ flips: k }); AF.route(); } }, text)));
      AF.fill(flipsBox, h("p", { class: "muted" }, `${p.fixed.length + p.broken.length} flipped, ${p.same} the same; ${p.onlyA} only in A, ${p.onlyB} only in B`), tabs);
    }

    draw(a, b);
    AF.fill(main, h("h1", {}, `A: ${a.name}  ↔  B: ${b.name}`),
      h("p", { class: "muted info" }, `A: ${a.path} · B: ${b.path}`),
      h("section", { class: "card" }, summaryBox),
      h("section", { class: "card" }, h("h3", {}, "Items whose score flipped"), flipsBox,
        h("div", { class: "qrow qhead pair" }, ["benchmark", "id", "A", "B", "question", "A answered", "B answered", "gold"].map((x, k) =>
          h("span", { class: ["c-bench", "c-id", "c-out", "c-out", "c-q", "c-a", "c-a", "c-g"][k] }, x))), list.el));
    const pulse = () => ctx.pulse(`${feeds[0].rows.length.toLocaleString("en-US")} ↔ ${feeds[1].rows.length.toLocaleString("en-US")} queries`);
    pulse();
    ctx.every(1000, async () => {
      const changed = await Promise.all(feeds.map((f) => f.poll()));
      pulse();
      if (changed.some(Boolean)) draw(...(await summaries()));
    });
  };

  AF.pages.compareItem = async function (main, ctx, ia, ib, na, nb) {
    const [a, b, ra, rb] = await Promise.all([AF.load(`eval/${ia}/summary`), AF.load(`eval/${ib}/summary`),
      AF.load(`eval/${ia}/record/${na}`), AF.load(`eval/${ib}/record/${nb}`)]);
    ctx.crumbs([[`#/compare/${ia}/${ib}`, `compare ${a.name} ↔ ${b.name}`], [location.hash, `${ra.benchmark} / ${ra.item_id}`]]);
    AF.fill(main, h("div", { class: "side-by-side" },
      h("div", { class: "side" }, AF.renderTrajectory(ra.trajectory, { record: ra, title: `A: ${a.name}` })),
      h("div", { class: "side" }, AF.renderTrajectory(rb.trajectory, { record: rb, title: `B: ${b.name}` }))));
  };
})();

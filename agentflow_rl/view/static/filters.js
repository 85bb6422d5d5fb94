/* Filtering and sorting the query list in the browser: a 10,000-row list filters in a few
 * milliseconds, and the same code serves a live run and a static export. The state lives in
 * the URL's query part, so a filtered view can be linked and survives a reload. */
"use strict";
window.AF = window.AF || {};

(function () {
  AF.FILTER_KEYS = ["benchmark", "outcome", "tool", "turns", "q", "sort", "dir"];

  function haystack(row) {
    if (row._text === undefined) {
      row._text = [row.benchmark, row.id, row.question, row.answer, (row.gold || []).join(" "), row.error || ""]
        .join("\n")
        .toLowerCase();
    }
    return row._text;
  }

  function matches(row, f) {
    if (f.benchmark && row.benchmark !== f.benchmark) return false;
    if (f.outcome === "correct" && !row.correct) return false;
    if (f.outcome === "wrong" && row.correct) return false;
    if (f.outcome === "error" && !row.error) return false;
    if (f.tool === "(none)" && row.tools.length) return false;
    if (f.tool && f.tool !== "(none)" && !row.tools.includes(f.tool)) return false;
    if (f.turns !== undefined && f.turns !== "" && row.turns !== Number(f.turns)) return false;
    if (f.q && !haystack(row).includes(f.q.toLowerCase())) return false;
    return true;
  }

  const SORTS = {
    file: (r) => r.i,
    benchmark: (r) => r.benchmark + "\u0000" + r.id,
    turns: (r) => r.turns,
    tokens: (r) => r.tokens,
    time: (r) => r.elapsed,
    score: (r) => r.value,
    tool_errors: (r) => r.tool_errors,
  };
  AF.SORTS = Object.keys(SORTS);

  AF.applyFilters = function (rows, f) {
    const kept = rows.filter((row) => row && matches(row, f));
    const key = SORTS[f.sort] || SORTS.file;
    const sign = f.dir === "desc" ? -1 : 1;
    kept.sort((a, b) => {
      const x = key(a), y = key(b);
      return (x < y ? -1 : x > y ? 1 : a.i - b.i) * sign;
    });
    return kept;
  };

  AF.facets = function (rows) {
    const benchmarks = new Set(), tools = new Set();
    let maxTurns = 0;
    for (const row of rows) {
      if (!row) continue;
      benchmarks.add(row.benchmark);
      row.tools.forEach((t) => tools.add(t));
      maxTurns = Math.max(maxTurns, row.turns);
    }
    return { benchmarks: [...benchmarks].sort(), tools: [...tools].sort(), maxTurns };
  };
})();

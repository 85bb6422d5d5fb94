/* The page's router: the part of the URL after "#" names a view and its arguments,
 * "?..." after it holds that view's filters. */
"use strict";
window.AF = window.AF || {};

(function () {
  const { h } = AF;
  let generation = 0;

  const ROUTES = [
    [/^\/eval\/(\d+)$/, "eval"],
    [/^\/eval\/(\d+)\/item\/(\d+)$/, "evalItem"],
    [/^\/trajectory\/(\d+)$/, "trajectory"],
    [/^\/compare\/(\d+)\/(\d+)$/, "compare"],
    [/^\/compare\/(\d+)\/(\d+)\/item\/(\d+)\/(\d+)$/, "compareItem"],
    [/^\/train\/(\d+)$/, "train"],
    [/^\/train\/(\d+)\/step\/(\d+)$/, "train"],
  ];

  function parse() {
    const raw = location.hash.replace(/^#/, "") || "/";
    const [path, qs] = raw.split("?");
    return { path, query: Object.fromEntries(new URLSearchParams(qs || "")) };
  }

  function context(path, query, mine) {
    return {
      query,
      setQuery(values) {
        const qs = new URLSearchParams(Object.entries(values).filter(([, v]) => v !== "" && v !== undefined)).toString();
        history.replaceState(null, "", "#" + path + (qs ? "?" + qs : ""));
      },
      every(ms, fn) {
        if (!AF.live) return;
        const tick = async () => {
          if (mine !== generation) return;
          try { await fn(); } catch (err) { AF.status("update failed: " + err.message); }
          document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);  // for tests and curious people
          if (mine === generation) setTimeout(tick, ms);
        };
        setTimeout(tick, ms);
      },
      crumbs(items) {
        document.getElementById("crumbs").replaceChildren(...items.map(([href, text]) => h("a", { href }, text)));
        document.title = "AgentFlow view · " + items.map(([, text]) => text).join(" · ");
      },
      pulse(text) { AF.status((AF.live ? "live · " : "static export · ") + text); },
    };
  }

  AF.status = function (text) {
    document.getElementById("live").textContent = text;
  };

  async function home(main, ctx) {
    const sources = await AF.load("sources");
    const evals = sources.filter((s) => s.kind === "eval");
    if (sources.length === 1) return go(`#/${sources[0].kind}/${sources[0].id}`);
    if (sources.length === 2 && evals.length === 2) return go(`#/compare/0/1`);
    ctx.crumbs([]);
    const pick = evals.length >= 2 ? h("p", {}, "Compare: ", evals.slice(1).map((b) => h("a", { class: "chip", href: `#/compare/${evals[0].id}/${b.id}` }, `${evals[0].name} ↔ ${b.name}`))) : null;
    AF.fill(main, h("h1", {}, "What was given"), h("ul", { class: "sources" },
      sources.map((s) => h("li", {}, h("a", { href: `#/${s.kind}/${s.id}` }, s.name), ` · ${s.kind} · `, h("span", { class: "muted" }, s.path)))), pick);
  }

  function go(hash) {
    location.replace(hash);
  }

  AF.pages.trajectory = async function (main, ctx, id) {
    const data = await AF.load(`trajectory/${id}`);
    ctx.crumbs([[`#/trajectory/${id}`, data.name]]);
    AF.fill(main, AF.renderTrajectory(data.trajectory, { title: data.path }));
  };

  AF.route = async function () {
    const mine = ++generation;
    const { path, query } = parse();
    const main = document.getElementById("main");
    const ctx = context(path, query, mine);
    AF.status(AF.live ? "live" : "static export");
    try {
      for (const [pattern, page] of ROUTES) {
        const found = pattern.exec(path);
        if (found) {
          await AF.pages[page](main, ctx, ...found.slice(1));
          window.scrollTo(0, 0);
          return;
        }
      }
      await home(main, ctx);
    } catch (err) {
      if (mine === generation) AF.fill(main, h("p", { class: "error-text" }, "Could not show this: " + err.message));
    } finally {
      if (mine === generation) document.body.dataset.ready = path;
    }
  };

  window.addEventListener("hashchange", AF.route);
  AF.route();
})();

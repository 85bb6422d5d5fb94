/* Where the page's data comes from: the server's /api/<path>, or, in a static export, the
 * script data/<path>.js that calls AF_DATA(path, value) (file:// pages may not fetch). */
"use strict";
window.AF = window.AF || {};

(function () {
  const meta = document.querySelector('meta[name="agentflow-mode"]');
  AF.mode = meta ? meta.getAttribute("content") : "serve";
  AF.live = AF.mode === "serve";

  const waiting = new Map();
  const loaded = new Map();

  window.AF_DATA = function (path, value) {
    loaded.set(path, value);
    const wait = waiting.get(path);
    if (wait) {
      waiting.delete(path);
      wait.resolve(value);
    }
  };

  function fromScript(path) {
    if (loaded.has(path)) return Promise.resolve(loaded.get(path));
    return new Promise((resolve, reject) => {
      waiting.set(path, { resolve, reject });
      const script = document.createElement("script");
      script.src = "data/" + path + ".js";
      script.onerror = () => {
        waiting.delete(path);
        reject(new Error("this export has no data for " + path));
      };
      document.head.append(script);
    });
  }

  async function fromServer(path) {
    const response = await fetch("api/" + path, { cache: "no-store" });
    const body = await response.json().catch(() => ({ error: response.statusText }));
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  }

  AF.load = function (path) {
    return AF.mode === "export" ? fromScript(path) : fromServer(path);
  };

  /* A list that grows: rows since a version, upserted by their "i" (or appended without one). */
  AF.Feed = class {
    constructor(path) {
      this.path = path;
      this.version = "0";
      this.rows = [];
    }
    async poll() {
      const data = await AF.load(this.path + "/" + (AF.mode === "export" ? "0" : this.version));
      const changed = this.version !== data.version || data.reset;
      if (data.reset) this.rows = [];
      for (const row of data.rows) {
        if (row.i === undefined) this.rows.push(row);
        else this.rows[row.i] = row;
      }
      this.version = data.version;
      this.extra = data;
      return changed;
    }
  };
})();

/* Building the page: every piece of data enters the document as text, never as markup.
 *
 * h(tag, props, ...children) makes an element; strings and numbers among the children become
 * text nodes. Event handlers come from props whose names start with "on" and are always code
 * of this page. There is no innerHTML anywhere in the viewer: a tool result that holds
 * <script> or onerror= is shown as those characters. */
"use strict";
window.AF = window.AF || {};
AF.pages = AF.pages || {};

(function () {
  const SVG_NS = "http://www.w3.org/2000/svg";

  function append(el, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  function setProps(el, props) {
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
      else if (key === "class") el.setAttribute("class", value);
      else if (key === "href") el.setAttribute("href", AF.link(value));
      else if (key === "value") el.value = value;
      else el.setAttribute(key, value === true ? "" : String(value));
    }
  }

  AF.h = function (tag, props, ...children) {
    const el = document.createElement(tag);
    setProps(el, props);
    return append(el, children);
  };

  /* Replace an element's children, or add to them, with the same flattening rules as h(). */
  AF.fill = (el, ...children) => append((el.replaceChildren(), el), children);
  AF.add = (el, ...children) => append(el, children);

  AF.s = function (tag, props, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    setProps(el, props);
    return append(el, children);
  };

  /* Links are only ever to this page's own routes. */
  AF.link = function (value) {
    const text = String(value);
    return text.startsWith("#") ? text : "#/";
  };

  AF.fmt = {
    pct: (v) => (v === null || v === undefined ? "–" : (100 * v).toFixed(1)),
    num: (v, digits = 2) => (v === null || v === undefined || Number.isNaN(v) ? "–" : Number(v).toFixed(digits)),
    int: (v) => (v === null || v === undefined ? "–" : Math.round(v).toLocaleString("en-US")),
    secs: (v) => (v === null || v === undefined ? "–" : v < 10 ? v.toFixed(2) + " s" : v.toFixed(1) + " s"),
    json: (v) => JSON.stringify(v, null, 2),
  };

  AF.outcome = function (row) {
    if (row.error && !row.answer) return "error";
    return row.correct ? "correct" : "wrong";
  };

  AF.badge = function (outcome) {
    const label = { correct: "✓ correct", wrong: "✗ wrong", error: "! error" }[outcome] || outcome;
    return AF.h("span", { class: "badge " + outcome }, label);
  };
})();

/* A list that draws only the rows in view, so 10,000 queries scroll like 30.
 * Rows have one fixed height; a spacer gives the scrollbar its full length. */
"use strict";
window.AF = window.AF || {};

AF.VirtualList = class {
  constructor(renderRow, { rowHeight = 34, overscan = 8, className = "vlist" } = {}) {
    this.renderRow = renderRow;
    this.rowHeight = rowHeight;
    this.overscan = overscan;
    this.items = [];
    this.el = AF.h("div", { class: className, tabindex: "0" });
    this.spacer = AF.h("div", { class: "vlist-spacer" });
    this.el.append(this.spacer);
    this.queued = false;
    this.el.addEventListener("scroll", () => this.schedule());
    window.addEventListener("resize", () => this.schedule());
  }
  setItems(items) {
    this.items = items;
    this.spacer.style.height = items.length * this.rowHeight + "px";
    this.drawn = null;
    this.draw();
  }
  schedule() {
    if (this.queued) return;
    this.queued = true;
    requestAnimationFrame(() => {
      this.queued = false;
      this.draw();
    });
  }
  draw() {
    const view = this.el.clientHeight || 600;
    const first = Math.max(0, Math.floor(this.el.scrollTop / this.rowHeight) - this.overscan);
    const last = Math.min(this.items.length, Math.ceil((this.el.scrollTop + view) / this.rowHeight) + this.overscan);
    const key = first + ":" + last;
    if (this.drawn === key) return;
    this.drawn = key;
    const started = performance.now();
    const rows = [];
    for (let i = first; i < last; i++) {
      const row = this.renderRow(this.items[i], i);
      row.classList.add("vrow");
      row.style.transform = `translateY(${i * this.rowHeight}px)`;
      row.style.height = this.rowHeight + "px";
      rows.push(row);
    }
    this.spacer.replaceChildren(...rows);
    this.el.dataset.drawMs = (performance.now() - started).toFixed(2);  // read by benchmarks/view_big_run.py
  }
};

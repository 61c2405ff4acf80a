"""The page side: which elements are controls, and the helpers injected into JupyterLab's page (``window.__bt``)."""
from __future__ import annotations

import json

# Controls (their containers) whose own text is not "rendered output": removed before reading text.
CONTROL_SELECTOR = (
    ".widget-slider, .widget-dropdown, .widget-text, .widget-textarea, .widget-toggle-buttons, .widget-radio, "
    ".widget-checkbox, .widget-button, .widget-select, .widget-select-multiple, .widget-combobox, "
    ".widget-colorpicker, .widget-datepicker, .widget-play, .widget-upload, .widget-readout, .widget-hprogress, "
    ".widget-vprogress"
)


JS_HELPERS = r"""
() => {
  if (window.__bt) return true;
  const CONTROL = %(control)s;
  const norm = (s) => (s || "").replace(/[\u200b\s]+/g, " ").trim();
  const bt = {
    nb: null,
    iopub: [],
    current() { return bt.nb; },
    kernel() { const s = bt.nb && bt.nb.sessionContext.session; return s ? s.kernel : null; },
    status() { const k = bt.kernel(); return k ? k.status : "none"; },
    codeCells() { return [...bt.nb.content.widgets].filter(c => c.model.type === "code"); },
    runState() {
      const cells = bt.codeCells().filter(c => c.model.sharedModel.getSource().trim() !== "");
      const errors = cells.filter(c => [...Array(c.model.outputs.length).keys()]
        .some(i => c.model.outputs.get(i).type === "error")).length;
      const pending = cells.findIndex(c => c.model.executionCount === null || c.model.executionCount === undefined);
      return { status: bt.status(), total: cells.length,
               done: cells.filter(c => c.model.executionCount !== null && c.model.executionCount !== undefined).length,
               errors, pending, pendingSource: pending >= 0 ? cells[pending].model.sharedModel.getSource().slice(0, 120) : "" };
    },
    cellErrors() {
      const out = [];
      bt.codeCells().forEach((c, k) => {
        for (let i = 0; i < c.model.outputs.length; i++) {
          const o = c.model.outputs.get(i).toJSON();
          if (o.output_type === "error") out.push({ cell: k, ename: o.ename, evalue: o.evalue,
            source: c.model.sharedModel.getSource().slice(0, 120) });
        }
      });
      return out;
    },
    outputAreas() { return [...bt.nb.node.querySelectorAll(".jp-Cell-outputArea")]; },
    textOf(root) {
      const clone = root.cloneNode(true);
      clone.querySelectorAll(CONTROL).forEach(e => e.remove());
      clone.querySelectorAll(".jp-OutputArea-prompt, .jp-OutputArea-promptOverlay").forEach(e => e.remove());
      return norm(clone.textContent);
    },
    outputsText() { return bt.outputAreas().map(a => bt.textOf(a)); },
    descriptionOf(el) {
      if (el.matches("button.widget-button")) return norm(el.textContent);
      const cb = el.querySelector(":scope > .widget-label-basic > span");
      if (el.matches(".widget-checkbox") && cb) return norm(cb.textContent);
      const lab = el.querySelector(":scope > label.widget-label");
      return lab ? norm(lab.textContent) : null;
    },
    controls() {
      const sel = "button.widget-button, .widget-inline-hbox, .widget-toggle-buttons, .widget-radio, .widget-slider";
      return [...bt.nb.node.querySelectorAll(sel)].filter(el => el.matches(CONTROL.replace(/, \.widget-readout/, "")))
        .map(el => ({ el, description: bt.descriptionOf(el) })).filter(c => c.description);
    },
    mark(description, nth, tag) {
      document.querySelectorAll("[data-bt]").forEach(e => e.removeAttribute("data-bt"));
      const all = bt.controls();
      const hits = all.filter(c => c.description === description);
      const result = { count: hits.length, available: [...new Set(all.map(c => c.description))] };
      if (hits.length === 0 || (nth === null && hits.length > 1) || (nth !== null && nth >= hits.length)) return result;
      const el = hits[nth === null ? 0 : nth].el;
      el.setAttribute("data-bt", tag);
      const area = el.closest(".jp-Cell-outputArea");
      if (area) area.setAttribute("data-bt", tag + "-scope");
      result.kind = ["widget-button", "widget-dropdown", "widget-select-multiple", "widget-select", "widget-slider",
        "widget-toggle-buttons", "widget-radio", "widget-checkbox", "widget-text", "widget-textarea"]
        .find(k => el.classList.contains(k)) || "unknown";
      return result;
    },
    shown(el) {
      if (el.matches(".widget-slider")) return norm(el.querySelector(".widget-readout").textContent);
      const s = el.querySelector("select");
      if (s) return [...s.selectedOptions].map(o => norm(o.textContent)).join(", ");
      const active = el.querySelector(".widget-toggle-button.mod-active");
      if (active) return norm(active.textContent);
      const radio = el.querySelector("input[type=radio]:checked");
      if (radio) return norm(radio.parentElement.textContent);
      const box = el.querySelector("input[type=checkbox]");
      if (box) return String(box.checked);
      const input = el.querySelector("input, textarea");
      return input ? input.value : norm(el.textContent);
    },
  };
  window.__bt = bt;
  return true;
}
""" % {"control": json.dumps(CONTROL_SELECTOR)}

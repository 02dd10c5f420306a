// Shared helpers of the console pages (no external libraries).
"use strict";
window.Xiaoer = {
  csrf() { const m = document.querySelector('meta[name="csrf-token"]'); return m ? m.content : ""; },
  duration(s) {
    if (s < 60) return s + "秒";
    if (s < 3600) return Math.floor(s / 60) + "分钟";
    return Math.floor(s / 3600) + "小时" + Math.floor((s % 3600) / 60) + "分";
  },
  el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v; else if (k === "dataset") Object.assign(node.dataset, v); else node.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  },
  async postJSON(url, body) {
    const r = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": Xiaoer.csrf(), "Accept": "application/json" },
      body: JSON.stringify(body),
    });
    let data = {};
    try { data = await r.json(); } catch (e) { data = {}; }
    return { ok: r.ok, status: r.status, data };
  },
};

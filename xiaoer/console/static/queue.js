// The queue page: rows follow the shared live connection (live.js).
"use strict";
(function () {
  const body = document.getElementById("queue-body");
  if (!body) return;
  const { el, duration, live } = window.Xiaoer;
  const state = document.getElementById("live-state");
  const count = document.getElementById("waiting-count");
  let known = new Set([...body.querySelectorAll("tr[data-id]")].map((tr) => tr.dataset.id));
  let loadedAt = Date.now();

  function row(r, fresh) {
    const status = el("td", { class: "holder" }, r.status_label);
    if (r.agent) status.append(el("div", { class: "muted small" }, r.agent));
    const wait = r.waiting_seconds === null
      ? el("td", { class: "wait answered" }, "已回复")
      : el("td", { class: "wait", "data-seconds": r.waiting_seconds }, duration(r.waiting_seconds));
    return el("tr", { "data-id": r.id, class: "pri-" + r.priority + (fresh ? " new" : "") },
      el("td", {}, el("span", { class: "tag pri-" + r.priority }, r.priority_label)),
      el("td", { class: "cust" }, r.customer),
      el("td", {}, r.group),
      el("td", {}, r.reason, el("div", { class: "muted small" }, r.intent)),
      el("td", { class: "preview" }, r.preview),
      wait,
      status,
      el("td", {}, el("a", { class: "btn small primary", href: "/handoffs/" + r.id }, "打开")));
  }

  function render(queue) {
    loadedAt = Date.now();
    const rows = queue.items.map((r) => row(r, !known.has(String(r.id))));
    known = new Set(queue.items.map((r) => String(r.id)));
    body.replaceChildren(...(rows.length ? rows : [el("tr", { class: "empty" }, el("td", { colspan: 8 }, "暂时没有排队的会话 🎉"))]));
    count.textContent = queue.waiting;
  }

  setInterval(() => {
    const extra = Math.floor((Date.now() - loadedAt) / 1000);
    for (const td of body.querySelectorAll("td.wait[data-seconds]")) td.textContent = duration(Number(td.dataset.seconds) + extra);
  }, 1000);
  live.onState((text) => { state.textContent = text; });
  live.on(render);
})();

// The queue page: live updates over server-sent events (polling as a fallback).
"use strict";
(function () {
  const body = document.getElementById("queue-body");
  if (!body) return;
  const { el, duration } = window.Xiaoer;
  const state = document.getElementById("live-state");
  const count = document.getElementById("waiting-count");
  let known = new Set([...body.querySelectorAll("tr[data-id]")].map((tr) => tr.dataset.id));
  let loadedAt = Date.now();

  function row(r, fresh) {
    const status = el("td", {}, r.status_label);
    if (r.agent) status.append(el("div", { class: "muted small" }, r.agent));
    return el("tr", { "data-id": r.id, class: "pri-" + r.priority + (fresh ? " new" : "") },
      el("td", {}, el("span", { class: "tag pri-" + r.priority }, r.priority_label)),
      el("td", { class: "mono" }, r.customer),
      el("td", {}, r.group),
      el("td", {}, r.reason, el("div", { class: "muted small" }, r.intent)),
      el("td", { class: "preview" }, r.preview),
      el("td", { class: "wait", "data-seconds": r.waiting_seconds }, duration(r.waiting_seconds)),
      status,
      el("td", {}, el("a", { class: "btn small primary", href: "/handoffs/" + r.id }, "打开")));
  }

  function render(queue) {
    loadedAt = Date.now();
    const rows = queue.items.map((r) => row(r, !known.has(String(r.id))));
    known = new Set(queue.items.map((r) => String(r.id)));
    body.replaceChildren(...(rows.length ? rows : [el("tr", { class: "empty" }, el("td", { colspan: 8 }, "暂时没有排队的会话 🎉"))]));
    count.textContent = queue.waiting;
    document.title = (queue.waiting ? "(" + queue.waiting + ") " : "") + document.title.replace(/^\(\d+\) /, "");
  }

  setInterval(() => {
    const extra = Math.floor((Date.now() - loadedAt) / 1000);
    for (const td of body.querySelectorAll("td.wait")) td.textContent = duration(Number(td.dataset.seconds) + extra);
  }, 1000);

  let polling = null;
  function poll() {
    if (polling) return;
    state.textContent = "实时连接断开，每 3 秒刷新";
    polling = setInterval(async () => {
      const r = await fetch("/api/queue", { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (r.status === 401) { location.href = "/login?next=/"; return; }
      if (r.ok) render(await r.json());
    }, 3000);
  }
  if (!window.EventSource) { poll(); return; }
  const source = new EventSource("/api/queue/stream");
  source.addEventListener("queue", (e) => { render(JSON.parse(e.data)); });
  source.onopen = () => {
    state.textContent = "实时更新中";
    if (polling) { clearInterval(polling); polling = null; }
  };
  // the server ends the stream with an "auth" event when the session is over (logged out,
  // account disabled, expired): go to the login
  source.addEventListener("auth", () => {
    source.close();
    location.href = "/login?next=/";
  });
  source.onerror = async () => {
    state.textContent = "正在重新连接…";
    if (source.readyState !== EventSource.CLOSED) return;
    // the browser gave up (e.g. the stream answered 401): ask once, then poll
    const r = await fetch("/api/queue", { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (r.status === 401) { location.href = "/login?next=/"; return; }
    poll();
  };
})();

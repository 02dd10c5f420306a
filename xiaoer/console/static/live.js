// On every console page: one live connection (server-sent events, polling as a fallback)
// to the queue. New waiting customers, new messages in the agent's chats and transfers
// that concern the agent alert here: a toast, the count in the tab title, an optional
// sound (/static/alert.wav) and a desktop notification (after the agent allows it).
"use strict";
(function () {
  const X = window.Xiaoer;
  const listeners = [];
  const stateListeners = [];
  const live = {
    last: null,
    on(fn) { listeners.push(fn); if (live.last) fn(live.last); },
    onState(fn) { stateListeners.push(fn); },
  };
  X.live = live;
  X.viewing = null; // the chat open and visible on this page (no alert for its messages)
  const baseTitle = document.title.replace(/^\(\d+\) /, "");
  const toasts = document.getElementById("toasts");
  const soundBtn = document.getElementById("sound-toggle");
  const notifyBtn = document.getElementById("notify-toggle");
  const audio = new Audio("/static/alert.wav");
  let knownWaiting = null;
  let unreadByChat = null;

  function soundOn() { return localStorage.getItem("xiaoer.sound") === "1"; }
  function showSound() {
    soundBtn.textContent = soundOn() ? "提示音：开" : "提示音：关";
    soundBtn.classList.toggle("on", soundOn());
  }
  soundBtn.addEventListener("click", () => {
    localStorage.setItem("xiaoer.sound", soundOn() ? "0" : "1");
    showSound();
    if (soundOn()) audio.play().catch(() => {});
  });
  showSound();
  if ("Notification" in window && Notification.permission === "default") {
    notifyBtn.classList.remove("hidden");
    notifyBtn.addEventListener("click", async () => {
      const answer = await Notification.requestPermission();
      if (answer !== "default") notifyBtn.classList.add("hidden");
    });
  }

  function alertAgent(text, href, kind) {
    const toast = X.el("a", { class: "toast " + (kind || ""), href: href || "#", role: "status" }, text);
    toasts.prepend(toast);
    setTimeout(() => toast.remove(), 8000);
    while (toasts.children.length > 4) toasts.lastChild.remove();
    if (soundOn()) audio.play().catch(() => {});
    if ("Notification" in window && Notification.permission === "granted" && document.hidden) {
      const n = new Notification("店小二 · 客服工作台", { body: text, tag: href || text });
      n.onclick = () => { window.focus(); if (href) location.href = href; };
    }
  }
  live.alert = alertAgent;

  function setBadge(id, n) {
    const b = document.getElementById(id);
    if (!b) return;
    b.textContent = n;
    b.classList.toggle("hidden", !n);
  }

  function handle(queue) {
    live.last = queue;
    const byId = new Map(queue.items.map((i) => [i.id, i]));
    const waiting = new Set(queue.items.filter((i) => i.status === "waiting").map((i) => i.id));
    if (knownWaiting) {
      for (const id of waiting) {
        if (!knownWaiting.has(id)) {
          const it = byId.get(id);
          alertAgent("新客户等待接入：" + it.customer + (it.preview ? "：" + it.preview : ""), "/workspace?chat=" + id, "new");
        }
      }
    }
    knownWaiting = waiting;
    const unread = new Map(queue.my_chats.map((i) => [i.id, i.unread]));
    if (unreadByChat) {
      for (const [id, n] of unread) {
        const viewing = X.viewing === id && document.visibilityState === "visible";
        if (n > (unreadByChat.get(id) || 0) && !viewing) {
          const it = byId.get(id);
          alertAgent(it.customer + " 发来新消息：" + it.preview, "/workspace?chat=" + id, "message");
        }
      }
    }
    unreadByChat = unread;
    const total = queue.waiting + queue.unread;
    document.title = (total ? "(" + total + ") " : "") + baseTitle;
    setBadge("nav-waiting", queue.waiting);
    setBadge("nav-unread", queue.unread);
    for (const fn of listeners) fn(queue);
  }
  function state(text) { for (const fn of stateListeners) fn(text); }

  async function fetchOnce() {
    const r = await fetch("/api/queue", { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (r.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); return; }
    if (r.ok) handle(await r.json());
  }
  let polling = null;
  function poll() {
    if (polling) return;
    state("实时连接断开，每 3 秒刷新");
    polling = setInterval(fetchOnce, 3000);
  }
  if (!window.EventSource) { poll(); return; }
  const source = new EventSource("/api/queue/stream");
  source.addEventListener("queue", (e) => { handle(JSON.parse(e.data)); });
  source.addEventListener("notice", (e) => {
    const n = JSON.parse(e.data);
    alertAgent(n.text, "/workspace?chat=" + n.handoff_id, "transfer");
  });
  source.onopen = () => {
    state("实时更新中");
    if (polling) { clearInterval(polling); polling = null; }
  };
  // the server ends the stream with an "auth" event when the session is over (logged out,
  // account disabled, expired): go to the login
  source.addEventListener("auth", () => {
    source.close();
    location.href = "/login?next=" + encodeURIComponent(location.pathname);
  });
  source.onerror = async () => {
    state("正在重新连接…");
    if (source.readyState !== EventSource.CLOSED) return;
    // the browser gave up (e.g. the stream answered 401): ask once, then poll
    const r = await fetch("/api/queue", { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (r.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); return; }
    poll();
  };
})();

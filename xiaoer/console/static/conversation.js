// A conversation (its own page, or the workspace's pane): history refreshed every 2 s,
// replies, internal notes and images sent without reloading, the holder kept up to date.
"use strict";
(function () {
  const X = window.Xiaoer;
  const { el, postJSON } = X;
  const who = { customer: "客户", bot: "机器人", agent: "客服 ", system: "", note: "内部备注 · " };

  function line(m) {
    const bubble = el("div", { class: "bubble" }, m.text || "");
    if (m.image) bubble.append(el("a", { href: m.image, target: "_blank", rel: "noopener noreferrer" }, el("img", { class: "chat-img", src: m.image, alt: "图片" })));
    return el("li", { class: "msg " + m.who }, el("div", { class: "meta" }, who[m.who] + (m.agent_name || "") + " ", el("time", {}, m.time)), bubble);
  }

  X.initConversation = function (root) {
    const id = Number(root.dataset.id);
    const q = (sel) => root.querySelector(sel);
    const chat = q("#chat");
    const form = q("#reply-form");
    const text = q("#reply-text");
    const error = q("#reply-error");
    const ownerAlert = q("#owner-alert");
    let lastCount = chat.children.length;
    let holder = root.dataset.holder || "";
    let wasMine = null;
    let stopped = false;
    chat.scrollTop = chat.scrollHeight;

    function showError(message) { error.textContent = message; error.classList.remove("hidden"); }
    function visible() { return document.visibilityState === "visible"; }

    async function refresh() {
      if (stopped) return;
      const r = await fetch("/api/handoffs/" + id + "/messages", { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (r.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); return; }
      if (!r.ok || stopped) return;
      const data = await r.json();
      const statusTag = q("#conv-status");
      statusTag.textContent = data.status_label;
      statusTag.className = "tag status-" + data.status;
      q("#bot-state").textContent = data.paused ? "已暂停" : "在回复";
      q("#conv-holder").textContent = data.holder || (data.status === "closed" ? "—" : "暂无（排队中）");
      const take = q("#take-btn");
      if (take && data.status !== "waiting") take.closest("form").remove();
      if (wasMine === true && !data.mine && data.status === "active") {
        ownerAlert.textContent = "该会话已转给 " + data.holder + "，您不能再回复。";
        ownerAlert.classList.remove("hidden");
        if (form && !data.can_act) form.classList.add("hidden");
      } else if (holder !== data.holder && data.holder && !data.mine) {
        ownerAlert.textContent = "该会话已由 " + data.holder + " 接待。";
        ownerAlert.classList.remove("hidden");
        if (form && !data.can_act) form.classList.add("hidden");
      }
      holder = data.holder;
      wasMine = data.mine;
      if (data.lines.length !== lastCount) {
        const atBottom = chat.scrollHeight - chat.scrollTop - chat.clientHeight < 60;
        chat.replaceChildren(...data.lines.map(line));
        lastCount = data.lines.length;
        if (atBottom) chat.scrollTop = chat.scrollHeight;
      }
      if (data.unread > 0 && visible()) await postJSON("/api/handoffs/" + id + "/read", {});
    }
    X.viewing = id;
    const timer = setInterval(refresh, 2000);
    refresh();
    const onVisible = () => { if (visible()) refresh(); };
    document.addEventListener("visibilitychange", onVisible);

    const intervene = q("#intervene-btn");
    if (intervene) {
      intervene.addEventListener("click", () => {
        form.dataset.override = "1";
        form.classList.remove("hidden");
        q("#intervene-box").classList.add("hidden");
        text.focus();
      });
    }
    if (form) {
      for (const chip of root.querySelectorAll("#quick-replies .chip")) {
        chip.addEventListener("click", () => { text.value = chip.dataset.text; text.focus(); });
      }
      text.addEventListener("keydown", (e) => {
        if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); form.requestSubmit(); }
      });
      async function send(url, body, button) {
        button.disabled = true;
        error.classList.add("hidden");
        try {
          const r = await postJSON(url, body);
          if (!r.ok) { showError(r.data.message || "发送失败，请重试"); return false; }
          await refresh();
          chat.scrollTop = chat.scrollHeight;
          return true;
        } finally { button.disabled = false; }
      }
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        const value = text.value.trim();
        if (!value) return;
        const body = { text: value, override: form.dataset.override === "1" };
        if (await send("/api/handoffs/" + id + "/reply", body, q("#send-btn"))) text.value = "";
      });
      q("#note-btn").addEventListener("click", async () => {
        const value = text.value.trim();
        if (!value) { showError("先在输入框写下备注内容"); return; }
        if (await send("/api/handoffs/" + id + "/notes", { text: value }, q("#note-btn"))) text.value = "";
      });
      const file = q("#image-input");
      file.addEventListener("change", async () => {
        if (!file.files.length) return;
        const data = new FormData();
        data.append("image", file.files[0]);
        data.append("override", form.dataset.override === "1" ? "1" : "");
        error.classList.add("hidden");
        const r = await fetch("/api/handoffs/" + id + "/image", {
          method: "POST", credentials: "same-origin", body: data,
          headers: { "X-CSRF-Token": X.csrf(), Accept: "application/json" },
        });
        file.value = "";
        if (!r.ok) {
          let message = "图片发送失败，请重试";
          try { message = (await r.json()).message || message; } catch (e) { /* not JSON */ }
          showError(message);
          return;
        }
        await refresh();
        chat.scrollTop = chat.scrollHeight;
      });
    }
    return function stop() {
      stopped = true;
      clearInterval(timer);
      document.removeEventListener("visibilitychange", onVisible);
      if (X.viewing === id) X.viewing = null;
    };
  };

  const root = document.getElementById("conversation");
  if (root && !document.getElementById("workspace")) X.initConversation(root);
})();

// The conversation view: history refreshed every 2 s, replies sent without reloading.
"use strict";
(function () {
  const root = document.getElementById("conversation");
  if (!root) return;
  const { el, postJSON } = window.Xiaoer;
  const id = root.dataset.id;
  const chat = document.getElementById("chat");
  const form = document.getElementById("reply-form");
  const text = document.getElementById("reply-text");
  const error = document.getElementById("reply-error");
  const statusTag = document.getElementById("conv-status");
  const botState = document.getElementById("bot-state");
  const who = { customer: "客户", bot: "机器人", agent: "客服 ", system: "" };
  let lastCount = chat.children.length;
  chat.scrollTop = chat.scrollHeight;

  function line(m) {
    const bubble = el("div", { class: "bubble" }, m.text);
    if (m.image) { bubble.append(el("br"), el("a", { href: m.image, target: "_blank", rel: "noopener noreferrer" }, "[查看图片]")); }
    return el("li", { class: "msg " + m.who }, el("div", { class: "meta" }, who[m.who] + (m.agent_name || "") + " ", el("time", {}, m.time)), bubble);
  }

  async function refresh() {
    const r = await fetch("/api/handoffs/" + id + "/messages", { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (r.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); return; }
    if (!r.ok) return;
    const data = await r.json();
    statusTag.textContent = data.status_label;
    statusTag.className = "tag status-" + data.status;
    botState.textContent = data.paused ? "已暂停" : "在回复";
    const take = document.getElementById("take-btn");
    if (take && data.status !== "waiting") take.closest("form").remove();
    if (data.lines.length !== lastCount) {
      const atBottom = chat.scrollHeight - chat.scrollTop - chat.clientHeight < 60;
      chat.replaceChildren(...data.lines.map(line));
      lastCount = data.lines.length;
      if (atBottom) chat.scrollTop = chat.scrollHeight;
    }
  }
  setInterval(refresh, 2000);

  if (!form) return;
  for (const chip of document.querySelectorAll("#quick-replies .chip")) {
    chip.addEventListener("click", () => { text.value = chip.dataset.text; text.focus(); });
  }
  text.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); form.requestSubmit(); }
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const value = text.value.trim();
    if (!value) return;
    const button = document.getElementById("send-btn");
    button.disabled = true;
    error.classList.add("hidden");
    try {
      const r = await postJSON("/api/handoffs/" + id + "/reply", { text: value });
      if (!r.ok) { error.textContent = r.data.message || "发送失败，请重试"; error.classList.remove("hidden"); return; }
      text.value = "";
      await refresh();
      chat.scrollTop = chat.scrollHeight;
    } finally { button.disabled = false; }
  });
})();

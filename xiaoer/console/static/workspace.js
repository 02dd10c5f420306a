// 我的会话: the agent's chats (unread counts, latest customer message) and the waiting
// ones, live from live.js; a chat opens in the pane without a page load.
"use strict";
(function () {
  const root = document.getElementById("workspace");
  if (!root) return;
  const X = window.Xiaoer;
  const { el, live } = X;
  const mine = document.getElementById("my-chats");
  const waiting = document.getElementById("waiting-chats");
  const pane = document.getElementById("chat-pane");
  let current = null;
  let stop = null;

  function entry(r, badge) {
    const row = el("div", { class: "row" }, el("span", { class: "name" }, r.customer));
    if (badge) row.append(badge);
    const li = el("li", { class: "chat-item" + (r.id === current ? " active" : ""), "data-id": r.id },
      el("a", { href: "/workspace?chat=" + r.id }, row, el("div", { class: "small preview" }, r.preview || "")));
    return li;
  }
  function render(queue) {
    const my = queue.my_chats.map((r) => entry(r, r.unread ? el("span", { class: "badge unread" }, r.unread) : null));
    mine.replaceChildren(...(my.length ? my : [el("li", { class: "muted small empty" }, "没有正在接待的会话")]));
    const wait = queue.items.filter((r) => r.status === "waiting")
      .map((r) => entry(r, el("span", { class: "tag pri-" + r.priority }, r.priority_label)));
    waiting.replaceChildren(...(wait.length ? wait : [el("li", { class: "muted small empty" }, "暂时没有排队的客户")]));
    document.getElementById("ws-mine-count").textContent = queue.mine;
    document.getElementById("ws-waiting-count").textContent = queue.waiting;
  }

  async function open(id, push) {
    if (stop) { stop(); stop = null; }
    current = id;
    for (const li of root.querySelectorAll(".chat-item")) li.classList.toggle("active", Number(li.dataset.id) === id);
    const r = await fetch("/handoffs/" + id + "/pane", { credentials: "same-origin" });
    if (r.status === 401) { location.href = "/login?next=/workspace"; return; }
    if (current !== id) return; // another chat was chosen meanwhile
    if (!r.ok) {
      pane.replaceChildren(el("div", { class: "card muted" }, "会话不存在或您无权查看"));
      return;
    }
    pane.innerHTML = await r.text(); // rendered (escaped) by the server's template
    const conv = pane.querySelector("#conversation");
    if (conv) stop = X.initConversation(conv);
    if (push) history.pushState({ chat: id }, "", "/workspace?chat=" + id);
  }

  root.addEventListener("click", (e) => {
    const a = e.target.closest(".chat-item a");
    if (!a || e.ctrlKey || e.metaKey || e.shiftKey) return;
    e.preventDefault();
    open(Number(a.closest(".chat-item").dataset.id), true);
  });
  window.addEventListener("popstate", () => {
    const chat = new URLSearchParams(location.search).get("chat");
    if (chat) open(Number(chat), false);
  });
  live.on(render);
  if (root.dataset.open) open(Number(root.dataset.open), false);
})();

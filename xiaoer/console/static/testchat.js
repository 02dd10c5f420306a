// Test chat (测试与调整): talk to the real assistant as a customer; show why each answer came.
(function () {
  var root = document.getElementById("testchat");
  if (!root) return;
  var chat = document.getElementById("tc-chat");
  var explain = document.getElementById("tc-explain");
  var form = document.getElementById("tc-form");
  var input = document.getElementById("tc-input");
  var channel = document.getElementById("tc-channel");
  var csrf = (document.querySelector("meta[name=csrf-token]") || {}).content || "";
  var session = root.dataset.session;
  var avatar = root.dataset.avatar;
  var botName = root.dataset.bot || "机器人";
  var turnNo = 0;
  if (avatar) new Image().src = avatar; // loaded with the page, shown with the first answer

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }
  function clearEmpty() {
    ["tc-empty", "tc-explain-empty"].forEach(function (id) {
      var n = document.getElementById(id);
      if (n) n.remove();
    });
  }
  function addMessage(who, message) {
    var row = el("div", "msg " + who);
    if (who === "bot") {
      if (avatar) {
        var img = el("img", "avatar small");
        img.alt = botName;
        img.addEventListener("error", function () {
          // an avatar that cannot be shown: the name's first character, as without one
          img.replaceWith(el("span", "badge", botName.slice(0, 1)));
        });
        img.src = avatar;
        row.appendChild(img);
      } else {
        row.appendChild(el("span", "badge", botName.slice(0, 1)));
      }
    }
    var bubble = el("div", "bubble");
    if (message.text) bubble.appendChild(el("div", "", message.text));
    if (message.image) {
      var pic = el("img");
      pic.src = message.image;
      pic.alt = "图片";
      bubble.appendChild(pic);
    }
    if (message.buttons && message.buttons.length) {
      var buttons = el("div", "buttons");
      message.buttons.forEach(function (b) {
        var button = el("button", "btn small", b.title);
        button.type = "button";
        button.addEventListener("click", function () { send(b.payload || b.title, b.title); });
        buttons.appendChild(button);
      });
      bubble.appendChild(buttons);
    }
    row.appendChild(bubble);
    chat.appendChild(row);
    chat.scrollTop = chat.scrollHeight;
  }
  function pct(x) { return x === null || x === undefined ? "" : " " + Math.round(x * 100) + "%"; }
  function line(dl, label, value, href) {
    if (value === null || value === undefined || value === "") return;
    dl.appendChild(el("dt", "", label));
    var dd = el("dd");
    if (href) {
      var a = el("a", "", value);
      a.href = href;
      a.target = "_blank";
      dd.appendChild(a);
    } else {
      dd.textContent = value;
    }
    dl.appendChild(dd);
  }
  function addExplanation(turn) {
    turnNo += 1;
    var box = el("div", "turn");
    box.dataset.turn = String(turnNo);
    box.appendChild(el("b", "", "第 " + turnNo + " 句：" + turn.text));
    var dl = el("dl");
    var intent = (turn.intent || "") + pct(turn.confidence);
    line(dl, "意图", intent);
    if (turn.rule) {
      line(dl, "关键词规则", "#" + turn.rule.id + " " + turn.rule.label + (turn.rule.url ? "（编辑）" : ""), turn.rule.url);
    }
    if (turn.handoff_keyword) line(dl, "转人工关键词", turn.handoff_keyword);
    if (turn.negated) line(dl, "否定识别", "“" + turn.negated + "”是否定说法，不转人工");
    if (turn.kb) {
      line(dl, "知识库", "#" + turn.kb.id + " " + turn.kb.question + (turn.kb.url ? "（编辑）" : ""), turn.kb.url);
    } else if (turn.retrieval) {
      line(dl, "知识库", turn.retrieval.key + pct(turn.retrieval.confidence));
    }
    var decided = {
      exact: "与知识库问法一致",
      similar: "与该知识库问题最接近",
      closer: "模型不太确定，更接近该知识库问题",
      intents_alone: "模型不太确定，按不含知识库的意图模型识别",
      kb_declined: "更接近该意图的训练例句，未用知识库"
    }[turn.decided_by];
    if (decided) line(dl, "识别依据", decided);
    if (turn.forms && turn.forms.length) line(dl, "流程/表单", turn.forms.join("、"));
    if (turn.actions && turn.actions.length) {
      line(dl, "动作", turn.actions.map(function (a) {
        return a.name + (a.policy_label ? "（" + a.policy_label + "）" : "");
      }).join("，"));
    }
    var slots = Object.keys(turn.slots || {}).filter(function (k) {
      return ["shop_name", "bot_name", "service_hours", "sign_off", "has_sign_off", "session_started_metadata"].indexOf(k) < 0;
    });
    if (slots.length) line(dl, "记录", slots.map(function (k) { return k + "=" + JSON.stringify(turn.slots[k]); }).join("，"));
    if (turn.paused) line(dl, "状态", "机器人已暂停，等待人工");
    if (!turn.rule && turn.ranking && turn.ranking.length > 1) {
      line(dl, "其他候选", turn.ranking.slice(1).filter(function (r) { return r.confidence >= 0.01; }).map(function (r) { return r.name + pct(r.confidence); }).join("，"));
    }
    box.appendChild(dl);
    explain.appendChild(box);
    explain.scrollTop = explain.scrollHeight;
  }
  function send(text, shown) {
    clearEmpty();
    addMessage("customer", { text: shown || text });
    fetch("/api/testchat/send", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf, "Accept": "application/json" },
      body: JSON.stringify({ text: text, session: session, channel: channel.value }),
    }).then(function (r) {
      return r.json().then(function (data) { return { ok: r.ok, data: data }; });
    }).then(function (res) {
      if (!res.ok) {
        addMessage("bot", { text: "（" + (res.data.message || "发送失败") + "）" });
        return;
      }
      session = res.data.session;
      (res.data.messages || []).forEach(function (m) { addMessage("bot", m); });
      if (!(res.data.messages || []).length) addMessage("bot", { text: "（机器人没有回复）" });
      (res.data.turns || []).forEach(addExplanation);
    }).catch(function () {
      addMessage("bot", { text: "（无法连接控制台，请稍后重试）" });
    });
  }
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    input.value = "";
    send(text);
  });
  document.getElementById("tc-reset").addEventListener("click", function () {
    session = session.split("-")[0] + "-" + Math.random().toString(16).slice(2, 14);
    chat.textContent = "";
    explain.querySelectorAll(".turn").forEach(function (n) { n.remove(); });
    turnNo = 0;
  });
})();

/* The analytics dashboard's charts (Apache ECharts, served by the console itself).
   The figures come from the page (<script type="application/json" id="analytics-data">),
   the same ones as the tables beneath each chart; clicking a bar or a slice opens the
   conversations behind it. */
(function () {
  "use strict";
  var source = document.getElementById("analytics-data");
  if (!source || typeof echarts === "undefined") { return; }
  var f = JSON.parse(source.textContent);
  var L = f.labels || {};
  var colors = ["#5470c6", "#91cc75", "#fac858", "#ee6666", "#73c0de", "#3ba272", "#fc8452", "#9a60b4", "#ea7ccc"];
  var font = { fontFamily: "PingFang SC, Microsoft YaHei, WenQuanYi Micro Hei, sans-serif" };
  // every code's Chinese label comes from the server (xiaoer/core/labels.py): a code is never shown raw
  function label(kind, code) { return (L[kind] && L[kind][code]) || "其他"; }
  function drill(what) {
    var params = new URLSearchParams(window.location.search);
    params.set("from", f.from); params.set("to", f.to); params.set("bucket", f.bucket);
    if (f.channel) { params.set("channel", f.channel); }
    params.set("what", what);
    window.location.href = "/analytics/conversations?" + params.toString();
  }
  function entries(obj) { return Object.keys(obj || {}).map(function (k) { return [k, obj[k]]; }); }
  var buckets = Object.keys(f.series);
  var top = Object.keys(f.intents).slice(0, 5);
  var sec = function (v) { return v === null || v === undefined ? 0 : Math.round(v * 10) / 10; };
  // long Chinese labels (rotated when many) stay inside the card
  var grid = { left: 16, right: 16, top: 36, bottom: 8, containLabel: true };
  // a rotated first label reaches left of the axis: room for it
  var gridFor = function (rotated) { return rotated ? { left: 56, right: 16, top: 36, bottom: 8, containLabel: true } : grid; };
  var bar = function (names, values, color, onClick) {
    return { option: { color: [color], grid: gridFor(names.length > 5), tooltip: { trigger: "axis" },
      xAxis: { type: "category", data: names, axisLabel: { interval: 0, rotate: names.length > 5 ? 30 : 0, fontSize: 11 } },
      yAxis: { type: "value", minInterval: 1 }, series: [{ type: "bar", data: values, barMaxWidth: 36, label: { show: true, position: "top" } }] },
      click: onClick };
  };
  var pie = function (pairs, onClick) {
    return { option: { color: colors, tooltip: { trigger: "item", formatter: "{b}: {c} ({d}%)" },
      legend: { type: "scroll", orient: "vertical", right: 0, top: 10, bottom: 10, tooltip: { show: true },
        textStyle: { fontSize: 11, width: 120, overflow: "truncate" } },
      series: [{ type: "pie", radius: ["35%", "68%"], center: ["38%", "52%"], data: pairs.map(function (p) { return { name: p[0], value: p[1], code: p[2] }; }),
        label: { formatter: function (p) { return Math.round(p.percent * 10) / 10 + "%"; } } }] }, click: onClick };
  };
  var charts = {
    series: function () {
      var s = function (k) { return buckets.map(function (b) { return f.series[b][k]; }); };
      return { option: { color: ["#5470c6", "#fac858", "#ee6666", "#91cc75"], grid: { left: 48, right: 48, top: 40, bottom: 40 },
        tooltip: { trigger: "axis" }, legend: { top: 0 },
        xAxis: { type: "category", data: buckets.map(function (b) { return b.slice(5); }) },
        yAxis: [{ type: "value", name: "会话", minInterval: 1 }, { type: "value", name: "消息", minInterval: 1 }],
        series: [
          { name: "机器人解决", type: "bar", stack: "c", barMaxWidth: 48, data: s("automated") },
          { name: "转人工", type: "bar", stack: "c", data: s("handoffs") },
          { name: "未解决", type: "bar", stack: "c", data: s("unresolved") },
          { name: "客户消息", type: "line", yAxisIndex: 1, smooth: true, data: s("customer_messages") }] },
        click: function (p) { drill("bucket:" + buckets[p.dataIndex]); } };
    },
    intents: function () {
      // the top 9 and 其他 (the rest): the slices' shares equal the table's 占比
      var all = entries(f.intents);
      var pairs = all.slice(0, 9).map(function (e) { return [label("intents", e[0]), e[1], e[0]]; });
      var rest = all.slice(9).reduce(function (n, e) { return n + e[1]; }, 0);
      if (rest) { pairs.push(["其他", rest, ""]); }
      return pie(pairs, function (p) { if (p.data.code) { drill("intent:" + p.data.code); } });
    },
    intent_trend: function () {
      return { option: { color: colors, grid: grid, tooltip: { trigger: "axis" }, legend: { top: 0, type: "scroll" },
        xAxis: { type: "category", data: buckets.map(function (b) { return b.slice(5); }) }, yAxis: { type: "value", minInterval: 1 },
        series: top.map(function (i) { return { name: label("intents", i), type: "line", smooth: true,
          data: buckets.map(function (b) { return (f.intent_trend[b] || {})[i] || 0; }) }; }) } };
    },
    handoff_reasons: function () {
      var e = entries(f.handoff_reasons);
      return bar(e.map(function (x) { return label("reasons", x[0]); }), e.map(function (x) { return x[1]; }), "#fac858",
        function (p) { drill("reason:" + e[p.dataIndex][0]); });
    },
    products: function () {
      var p = f.top_products;
      return bar(p.map(function (x) { return x.name; }), p.map(function (x) { return x.count; }), "#73c0de",
        function (q) { drill("product:" + p[q.dataIndex].product); });
    },
    times: function () {
      var names = ["机器人响应", "人工首次响应", "人工处理"];
      var keys = ["bot_response_seconds", "agent_first_response_seconds", "agent_handling_seconds"];
      return { option: { color: ["#5470c6", "#ee6666"], grid: grid, tooltip: { trigger: "axis" }, legend: { top: 0 },
        xAxis: { type: "category", data: names }, yAxis: { type: "log", logBase: 10, min: 0.1 },
        series: [{ name: "p50", type: "bar", data: keys.map(function (k) { return sec(f[k].p50) || null; }), label: { show: true, position: "top" } },
                 { name: "p90", type: "bar", data: keys.map(function (k) { return sec(f[k].p90) || null; }), label: { show: true, position: "top" } }] } };
    },
    agents: function () {
      var a = f.agents;
      return bar(a.map(function (x) { return x.name; }), a.map(function (x) { return x.conversations; }), "#3ba272",
        function (p) { drill("agent:" + a[p.dataIndex].agent_id); });
    },
    csat: function () {
      var d = entries(f.csat.distribution);
      return bar(d.map(function (x) { return x[0] + "分"; }), d.map(function (x) { return x[1]; }), "#91cc75",
        function (p) { drill("rating:" + d[p.dataIndex][0]); });
    },
    csat_by: function () {
      var rows = f.csat.by_intent.slice(0, 8);
      return { option: { color: ["#9a60b4"], grid: gridFor(rows.length > 5), tooltip: { trigger: "axis" },
        xAxis: { type: "category", data: rows.map(function (r) { return label("intents", r.name); }), axisLabel: { rotate: rows.length > 5 ? 30 : 0, fontSize: 11 } },
        yAxis: { type: "value", min: 0, max: 5 },
        series: [{ name: "平均分", type: "bar", barMaxWidth: 36, data: rows.map(function (r) { return r.average; }), label: { show: true, position: "top" } }] },
        click: function (p) { drill("intent:" + rows[p.dataIndex].name); } };
    },
    leads: function () {
      return { option: { color: ["#5470c6", "#fac858", "#91cc75"], tooltip: { trigger: "item" },
        series: [{ type: "funnel", left: "8%", width: "70%", top: 20, bottom: 20, sort: "descending", minSize: "20%",
          label: { formatter: "{b}: {c}" },
          data: [{ name: "获取线索", value: f.leads.captured }, { name: "已联系", value: f.leads.contacted }, { name: "已成交", value: f.leads.won }] }] },
        click: function () { drill("lead"); } };
    },
    after_sales: function () {
      return pie(entries(f.after_sales.by_reason).map(function (e) { return [label("after_sales", e[0]), e[1], e[0]]; }), function () { drill("case"); });
    },
    channels: function () {
      return pie(entries(f.channels).map(function (e) { return [label("channels", e[0]), e[1], e[0]]; }),
        function (p) { drill("channel:" + p.data.code); });
    },
    greetings: function () {
      return bar(["主动问候", "问候后回复", "当前待发送", "当前发送失败"],
        [f.greetings.greeted, f.greetings.replied, f.outbox.backlog, f.outbox.failed], "#fc8452",
        function (p) { if (p.dataIndex < 2) { drill("greeted"); } });
    }
  };
  var made = [];
  document.querySelectorAll("[data-chart]").forEach(function (el) {
    var build = charts[el.getAttribute("data-chart")];
    if (!build) { return; }
    var spec = build();
    var chart = echarts.init(el, null, { renderer: "canvas" });
    spec.option.textStyle = font;
    spec.option.animation = false;
    chart.setOption(spec.option);
    if (spec.click) { chart.on("click", spec.click); el.style.cursor = "pointer"; }
    el.setAttribute("data-ready", "1");
    made.push(chart);
  });
  window.addEventListener("resize", function () { made.forEach(function (c) { c.resize(); }); });
})();

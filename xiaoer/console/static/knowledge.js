// The knowledge base page: the retraining progress, polled while a run is under way.
(function () {
  "use strict";
  var box = document.getElementById("kb-train");
  if (!box) return;
  var state = document.getElementById("kb-run-state");
  var progress = document.getElementById("kb-run-progress");
  var error = document.getElementById("kb-run-error");
  var bar = document.getElementById("kb-run-bar");
  function poll() {
    fetch("/knowledge/runs", { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data || !data.runs.length) return;
        var run = data.runs[0];
        state.textContent = run.state_label;
        progress.textContent = run.progress;
        error.textContent = run.error || "";
        bar.style.width = (run.percent || 0) + "%";
        box.setAttribute("data-state", run.state);
        var needed = document.getElementById("kb-needed");
        if (needed && !data.needed) needed.remove();
        if (!run.done) setTimeout(poll, 2000);
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  poll();
})();

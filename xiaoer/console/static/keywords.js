// Keyword rule form: show the fields of the chosen match mode and action only.
(function () {
  var form = document.getElementById("rule-form");
  if (!form) return;
  function sync() {
    var mode = (form.querySelector("input[name=mode]:checked") || {}).value || "contains";
    var action = (form.querySelector("input[name=action]:checked") || {}).value || "reply";
    form.querySelectorAll(".when-keywords").forEach(function (el) { el.hidden = mode === "regex"; });
    form.querySelectorAll(".when-regex").forEach(function (el) { el.hidden = mode !== "regex"; });
    form.querySelectorAll(".when-reply").forEach(function (el) { el.hidden = action !== "reply"; });
    form.querySelectorAll(".when-handoff").forEach(function (el) { el.hidden = action !== "handoff"; });
  }
  form.addEventListener("change", sync);
  sync();
})();

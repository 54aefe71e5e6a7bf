// The console's few lines of script: live countdowns, conditional questions, and the
// board's refresh that waits while a form is in use. Everything works without it.
(function () {
  "use strict";
  var serverNow = Date.parse(document.body.dataset.serverNow || "");
  var skew = isNaN(serverNow) ? 0 : serverNow - Date.now(); // the server's clock rules

  function clock(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return h + ":" + (m < 10 ? "0" : "") + m + ":" + (r < 10 ? "0" : "") + r;
  }

  function tick() {
    var now = Date.now() + skew;
    document.querySelectorAll(".countdown[data-deadline]").forEach(function (el) {
      var deadline = Date.parse(el.dataset.deadline);
      var left = deadline - now;
      el.textContent = left >= 0 ? el.dataset.left + " " + clock(left) : el.dataset.over + " " + clock(-left);
      el.classList.toggle("red", now >= Date.parse(el.dataset.redAt));
      el.classList.toggle("amber", now < Date.parse(el.dataset.redAt) && now >= Date.parse(el.dataset.amberAt));
    });
  }

  // A question with a condition is shown (and sent) only while the answer it depends on
  // is one of the values it lists.
  function answerOf(form, id) {
    var box = form.querySelector('[data-question="' + id + '"]');
    if (!box || box.hidden) return null;
    var checked = box.querySelector('input[name="q.' + id + '"]:checked');
    if (checked) return checked.value;
    var field = box.querySelector('[name="q.' + id + '"]');
    return field && field.type !== "radio" && field.value.trim() ? field.value.trim() : null;
  }

  function applyConditions(form) {
    form.querySelectorAll("[data-depends-on]").forEach(function (box) {
      var values = JSON.parse(box.dataset.shownWhen || "[]");
      var answer = answerOf(form, box.dataset.dependsOn);
      var show = answer !== null && values.indexOf(answer) >= 0;
      box.hidden = !show;
      box.disabled = !show;
    });
  }

  // A retention step's dependent fields (rule RT-4): shown (and sent) only while the field
  // they depend on has a value (data-when-field), or one of the listed ones (data-when-values).
  function valueOf(form, name) {
    var checked = form.querySelector('[name="' + name + '"]:checked');
    if (checked) return checked.value;
    var field = form.querySelector('[name="' + name + '"]');
    return field && field.type !== "radio" && field.type !== "checkbox" ? field.value : "";
  }

  function applyWhen(form) {
    form.querySelectorAll("[data-when-field]").forEach(function (box) {
      var value = valueOf(form, box.dataset.whenField);
      var values = JSON.parse(box.dataset.whenValues || "null");
      var show = values === null ? value !== "" : values.indexOf(value) >= 0;
      box.hidden = !show;
      box.querySelectorAll("input, select, textarea").forEach(function (el) { el.disabled = !show; });
    });
  }

  window.boardIdle = function () {
    var active = document.activeElement;
    return !(active && active.closest && active.closest("#panels form"));
  };

  // Alt+N takes the next callback, Alt+S saves the call: the same as the buttons' access
  // keys, handled here so that they work the same in every browser.
  document.addEventListener("keydown", function (event) {
    if (!event.altKey || event.ctrlKey || event.metaKey) return;
    var key = event.key.toLowerCase();
    var button = document.querySelector('button[accesskey="' + key + '"]');
    if (button && (key === "n" || key === "s")) {
      event.preventDefault();
      button.click();
    }
  });

  // The board's "Reassign" buttons fill the reassign form with their callback's number.
  document.addEventListener("click", function (event) {
    var pick = event.target.closest && event.target.closest("button.pick[data-callback]");
    if (!pick) return;
    var field = document.getElementById("reassign-callback");
    if (!field) return;
    field.value = pick.dataset.callback;
    document.getElementById("reassign-agent").focus();
  });

  document.addEventListener("DOMContentLoaded", function () {
    tick();
    setInterval(tick, 1000);
    document.querySelectorAll("form").forEach(function (f) {
      if (!f.querySelector("[data-when-field]")) return;
      f.addEventListener("change", function () { applyWhen(f); });
      applyWhen(f);
    });
    var form = document.getElementById("call-form");
    if (form) {
      // In script order, so that a chain of conditions settles in one pass.
      form.addEventListener("change", function () { applyConditions(form); });
      form.addEventListener("input", function () { applyConditions(form); });
      applyConditions(form);
      var firstError = form.querySelector(".question.invalid input, .question.invalid textarea");
      if (firstError) firstError.focus();
    }
  });
})();

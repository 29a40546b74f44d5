// One trial: wait until every picture has loaded, mark the stimulus onset, play an animation if there is
// one (answers unlock when it ends), then send the first answer (click or key) with its response time.
(function () {
  "use strict";
  var trial = document.getElementById("trial");
  if (!trial) { return; }
  var FRAME_MS = 500;
  var onset = null;
  var sent = false;
  var buttons = Array.prototype.slice.call(document.querySelectorAll("button.option[data-response]"));
  var free = document.getElementById("free-text");
  var message = document.getElementById("message");

  function setEnabled(enabled) {
    buttons.forEach(function (b) { b.disabled = !enabled; });
    if (free) { free.disabled = !enabled; if (enabled) { free.focus(); } }
  }

  function loaded(img) {
    return img.complete ? Promise.resolve() : new Promise(function (resolve) {
      img.addEventListener("load", resolve); img.addEventListener("error", resolve);
    });
  }

  function playAnimation() {
    var frames = Array.prototype.slice.call(document.querySelectorAll("#animation .frame"));
    if (!frames.length) { return Promise.resolve(); }
    return new Promise(function (resolve) {
      var shown = 0;
      var timer = setInterval(function () {
        if (shown + 1 >= frames.length) { clearInterval(timer); resolve(); return; }
        frames[shown].classList.remove("shown");
        shown += 1;
        frames[shown].classList.add("shown");
      }, FRAME_MS);
    });
  }

  function send(response) {
    if (sent || onset === null || !response) { return; }
    sent = true;
    setEnabled(false);
    var body = {
      participant_id: trial.dataset.participant, trial_index: Number(trial.dataset.index),
      task: trial.dataset.task, item_id: trial.dataset.item, screen: Number(trial.dataset.screen),
      response: response, rt_ms: Math.max(1, Math.round(performance.now() - onset))
    };
    fetch("/api/answer", { method: "POST", headers: { "Content-Type": "application/json" },
                           body: JSON.stringify(body), credentials: "same-origin" })
      .then(function (r) { return r.json().then(function (data) { return { ok: r.ok, data: data }; }); })
      .then(function (result) {
        if (result.ok) { window.location.replace(result.data.next); return; }
        message.textContent = result.data.error ? result.data.error.message : "Something went wrong.";
        if (result.data.error && result.data.error.expected !== undefined) { window.location.replace("/trial"); }
        sent = false; setEnabled(true);
      })
      .catch(function () { message.textContent = "Connection lost; please try again."; sent = false; setEnabled(true); });
  }

  buttons.forEach(function (b) { b.addEventListener("click", function () { send(b.dataset.response); }); });
  var form = document.getElementById("free-form");
  if (form) { form.addEventListener("submit", function (e) { e.preventDefault(); send(free.value.trim()); }); }
  document.addEventListener("keydown", function (e) {
    if (e.target === free || e.altKey || e.ctrlKey || e.metaKey) { return; }
    var key = e.key.toLowerCase();
    var match = buttons.filter(function (b) { return b.dataset.key === key; })[0];
    if (match && !match.disabled) { e.preventDefault(); send(match.dataset.response); }
  });

  setEnabled(false);
  Promise.all(Array.prototype.map.call(document.images, loaded)).then(function () {
    onset = performance.now();
    trial.dataset.onset = "1";
    return playAnimation();
  }).then(function () { setEnabled(true); trial.dataset.ready = "1"; });
})();

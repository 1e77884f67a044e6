// Live numbers without a full reload: every data-poll seconds, fetch this same page and swap in
// each element marked data-live. The server clamps the interval; the footer button pauses it.
// Nothing here is needed: without JavaScript the pages and their forms work the same (without asking
// before a form marked data-confirm is sent).
(function () {
  "use strict";
  // A form marked data-confirm asks first (stop a manager, purge, delete a group).
  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute && event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });
  var body = document.body;
  var seconds = parseInt(body.getAttribute("data-poll") || "0", 10);
  var toggle = document.getElementById("live-toggle");
  var state = document.getElementById("live-state");
  if (!seconds || !window.fetch || !window.DOMParser || !toggle || !state) {
    return;
  }
  var paused = false;
  var timer = null;
  var normal = "refreshing every " + seconds + " s";

  function schedule() {
    clearTimeout(timer);
    if (!paused) {
      timer = setTimeout(refresh, seconds * 1000);
    }
  }

  function swap(doc) {
    var live = document.querySelectorAll("[data-live]");
    for (var i = 0; i < live.length; i++) {
      var old = live[i];
      // Leave alone what the user is typing in or has focused.
      if (old.contains(document.activeElement) && document.activeElement !== body) {
        continue;
      }
      var fresh = doc.getElementById(old.id);
      if (fresh) {
        old.replaceWith(document.importNode(fresh, true));
      }
    }
    var rendered = doc.getElementById("rendered");
    var mine = document.getElementById("rendered");
    if (rendered && mine) {
      mine.textContent = rendered.textContent;
    }
  }

  function refresh() {
    fetch(window.location.href, {credentials: "same-origin", headers: {"X-Qw-Live": "1"}})
      .then(function (response) {
        return response.text().then(function (text) {
          var doc = new DOMParser().parseFromString(text, "text/html");
          if (response.ok) {
            swap(doc);
            state.textContent = normal;
            state.className = "";
          } else {
            var message = doc.getElementById("message");
            state.textContent = message ? message.textContent : "the dashboard answered " + response.status;
            state.className = "bad";
          }
        });
      })
      .catch(function () {
        state.textContent = "the dashboard does not answer; trying again";
        state.className = "bad";
      })
      .then(schedule);
  }

  toggle.hidden = false;
  toggle.addEventListener("click", function () {
    paused = !paused;
    toggle.textContent = paused ? "resume" : "pause";
    state.textContent = paused ? "paused" : normal;
    schedule();
  });
  schedule();
})();

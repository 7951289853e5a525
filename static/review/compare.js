// Compare page: 1 / 2 / 0 choose A, B or a tie, S / C say how much better, R jumps to the reason, Enter submits.
(function () {
  function form() { return document.querySelector(".compare-form"); }

  function pick(f, name, value) {
    var input = f.querySelector('input[name="' + name + '"][value="' + value + '"]');
    if (!input || input.disabled) return false;
    input.checked = true;
    update(f);
    return true;
  }

  function update(f) {
    var choice = f.querySelector('input[name="choice"]:checked');
    var tie = choice && choice.value === "tie";
    f.querySelectorAll(".candidate").forEach(function (card) {
      card.classList.toggle("chosen", !!choice && card.dataset.side === choice.value);
      card.classList.toggle("tied", tie);
    });
    // A tie has no strength: the server refuses one, so the choice is cleared and locked.
    f.querySelectorAll('input[name="strength"]').forEach(function (input) {
      input.disabled = tie && input.value !== "";
      if (tie && input.value === "") input.checked = true;
    });
  }

  function init() {
    var f = form();
    if (!f || f.dataset.ready) return;
    f.dataset.ready = "1";
    f.addEventListener("change", function () { update(f); });
    update(f);
  }

  var KEYS = { "1": ["choice", "A"], "2": ["choice", "B"], "0": ["choice", "tie"],
               "s": ["strength", "slightly"], "c": ["strength", "clearly"] };

  document.addEventListener("keydown", function (event) {
    var f = form();
    if (!f || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.matches("textarea, input[type=text], select")) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    var key = event.key.toLowerCase();
    if (KEYS[key]) {
      if (pick(f, KEYS[key][0], KEYS[key][1])) event.preventDefault();
    } else if (key === "r") {
      event.preventDefault();
      f.querySelector("textarea[name=reason]").focus();
    } else if (event.key === "Enter") {
      event.preventDefault();
      if (f.reportValidity()) f.requestSubmit();
    }
  });

  document.addEventListener("DOMContentLoaded", init);
  document.addEventListener("htmx:afterSwap", init);
  if (document.readyState !== "loading") init();
})();

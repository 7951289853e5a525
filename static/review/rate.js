// Rating page: digit keys score the active dimension and move on; the weighted score updates live.
(function () {
  function form() { return document.querySelector(".rate-form"); }
  function fields(f) { return Array.from(f.querySelectorAll("fieldset.dimension")); }
  var active = 0;

  function setActive(f, index) {
    var list = fields(f);
    active = Math.max(0, Math.min(index, list.length - 1));
    list.forEach(function (fs, i) { fs.classList.toggle("active", i === active); });
  }

  function update(f) {
    var total = 0, scored = 0, list = fields(f);
    list.forEach(function (fs) {
      var checked = fs.querySelector("input:checked");
      if (checked) { total += parseFloat(fs.dataset.weight) * parseFloat(checked.value); scored += 1; }
    });
    var out = f.querySelector("output[name=weighted]");
    out.textContent = scored === list.length ? total.toFixed(2) : (scored ? "≥ " + total.toFixed(2) : "–");
    f.querySelector("[data-progress]").textContent = "(" + scored + "/" + list.length + ")";
  }

  function init() {
    var f = form();
    if (!f || f.dataset.ready) return;
    f.dataset.ready = "1";
    var list = fields(f), first = list.findIndex(function (fs) { return !fs.querySelector("input:checked"); });
    setActive(f, first < 0 ? 0 : first);
    f.addEventListener("change", function (event) {
      var fs = event.target.closest("fieldset.dimension");
      if (fs) setActive(f, fields(f).indexOf(fs));
      update(f);
    });
    fields(f).forEach(function (fs, i) { fs.addEventListener("click", function () { setActive(f, i); }); });
    update(f);
  }

  document.addEventListener("keydown", function (event) {
    var f = form();
    if (!f || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.matches("textarea, input[type=text], select")) return;
    var list = fields(f);
    if (/^[0-9]$/.test(event.key)) {
      var fs = list[active], value = parseInt(event.key, 10);
      if (!fs || value < parseInt(fs.dataset.min, 10) || value > parseInt(fs.dataset.max, 10)) return;
      var input = fs.querySelector('input[value="' + value + '"]');
      if (!input) return;
      event.preventDefault();
      input.checked = true;
      update(f);
      setActive(f, active + 1);
    } else if (event.key === "Backspace") {
      event.preventDefault();
      setActive(f, active - 1);
    } else if (event.key === "Enter") {
      event.preventDefault();
      if (f.reportValidity()) f.requestSubmit();
    }
  });

  document.addEventListener("DOMContentLoaded", init);
  document.addEventListener("htmx:afterSwap", init);
  if (document.readyState !== "loading") init();
})();

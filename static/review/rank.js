// Rank page: a candidate's letter places it next (best first), Backspace takes the last one back, arrows move
// the selected candidate, drag and drop reorders; the hidden "order" field follows the list. Enter submits.
(function () {
  var placed = 0, selected = null, dragged = null;

  function form() { return document.querySelector(".rank-form"); }
  function items(f) { return Array.from(f.querySelectorAll(".rank-item")); }

  function sync(f) {
    var list = items(f);
    f.querySelector("input[name=order]").value = list.map(function (li) { return li.dataset.response; }).join(",");
    list.forEach(function (li, i) {
      li.classList.toggle("placed", i < placed);
      li.classList.toggle("selected", li === selected);
      li.querySelector(".rank-place").textContent = i < placed ? String(i + 1) : "";
    });
    var progress = f.querySelector("[data-rank-progress]");
    var text = placed >= list.length ? (progress.dataset.done || "") : (progress.dataset.todo || "");
    progress.textContent = text.replace("%(placed)s", placed).replace("%(total)s", list.length);
  }

  function place(f, li) {
    var list = items(f);
    if (list.indexOf(li) < placed) return;  // already placed
    var ol = li.parentNode;
    ol.insertBefore(li, list[placed] || null);
    placed += 1;
    if (placed === list.length - 1) placed = list.length;  // the last one has its place
    selected = li;
    sync(f);
  }

  function move(f, li, step) {
    var list = items(f), index = list.indexOf(li), target = index + step;
    if (index < 0 || target < 0 || target >= list.length) return;
    var ol = li.parentNode;
    if (step < 0) ol.insertBefore(li, list[target]); else ol.insertBefore(list[target], li);
    placed = Math.max(placed, target + 1, index + 1);  // moving a candidate is deciding its place
    if (placed === list.length - 1) placed = list.length;
    sync(f);
  }

  function init() {
    var f = form();
    if (!f || f.dataset.ready) return;
    f.dataset.ready = "1";
    placed = 0; selected = null;
    items(f).forEach(function (li) {
      li.addEventListener("click", function () { selected = li; sync(f); });
      li.addEventListener("dragstart", function (event) {
        dragged = li; li.classList.add("dragging");
        event.dataTransfer.effectAllowed = "move";
        event.dataTransfer.setData("text/plain", li.dataset.response);
      });
      li.addEventListener("dragend", function () { li.classList.remove("dragging"); dragged = null; });
      li.addEventListener("dragover", function (event) {
        if (!dragged || dragged === li) return;
        event.preventDefault();
        var box = li.getBoundingClientRect(), after = event.clientY > box.top + box.height / 2;
        li.parentNode.insertBefore(dragged, after ? li.nextSibling : li);
      });
      li.addEventListener("drop", function (event) {
        event.preventDefault();
        placed = items(f).length;  // a dragged list is an order the rater chose as a whole
        selected = dragged;
        sync(f);
      });
    });
    sync(f);
  }

  document.addEventListener("keydown", function (event) {
    var f = form();
    if (!f || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.matches("textarea, input[type=text], select")) return;
    var key = event.key.toUpperCase();
    var match = items(f).find(function (li) { return li.dataset.label === key; });
    if (match && event.key.length === 1) {
      event.preventDefault();
      place(f, match);
    } else if (event.key === "Backspace") {
      event.preventDefault();
      // the last candidate was placed with the one before it, so both come back together
      if (placed > 0) { placed = Math.max(0, placed >= items(f).length ? placed - 2 : placed - 1); sync(f); }
    } else if ((event.key === "ArrowUp" || event.key === "ArrowDown") && selected) {
      event.preventDefault();
      move(f, selected, event.key === "ArrowUp" ? -1 : 1);
    } else if (event.key === "Enter") {
      event.preventDefault();
      f.requestSubmit();
    }
  });

  document.addEventListener("DOMContentLoaded", init);
  document.addEventListener("htmx:afterSwap", init);
  if (document.readyState !== "loading") init();
})();

// The workbench: live diff, draft switching, edits of earlier turns, autosave, lease renewal and warning,
// keyboard shortcuts.
(function () {
  "use strict";
  const bench = document.getElementById("workbench");
  const csrf = () => (document.querySelector("input[name=csrfmiddlewaretoken]") || {}).value || "";
  const typing = (e) => ["TEXTAREA", "INPUT", "SELECT"].includes(e.target.tagName);

  // Word-level diff; Intl.Segmenter splits Chinese into words, which whitespace cannot.
  function renderDiff(target, before, after) {
    if (!target || !window.Diff) return;
    const segmenter = window.Intl && Intl.Segmenter ? new Intl.Segmenter(document.documentElement.lang || "en", { granularity: "word" }) : undefined;
    const parts = segmenter ? Diff.diffWords(before, after, { intlSegmenter: segmenter }) : Diff.diffChars(before, after);
    target.replaceChildren(...parts.map((part) => {
      const el = document.createElement(part.added ? "ins" : part.removed ? "del" : "span");
      el.textContent = part.value;
      return el;
    }));
    target.dataset.changes = String(parts.filter((p) => p.added || p.removed).length);
  }

  document.addEventListener("keydown", (e) => {
    const click = (id) => { const b = document.getElementById(id); if (b && !b.disabled) { e.preventDefault(); b.click(); } };
    if (e.ctrlKey && e.key === "Enter") return click(document.getElementById("submit-btn") ? "submit-btn" : "approve-btn");
    if (e.altKey && e.key.toLowerCase() === "s") return click("skip-btn");
    if (e.altKey && e.key.toLowerCase() === "e") return click("edit-btn");
    if (e.altKey && e.key.toLowerCase() === "r") {
      const comment = document.getElementById("comment");
      if (comment && !comment.value.trim()) { e.preventDefault(); comment.focus(); return; }
      return click("reject-btn");
    }
    if (typing(e)) return;
    if (e.key === "?") { e.preventDefault(); document.getElementById("help").showModal(); }
    if (e.key.toLowerCase() === "n") click("take-next");
    if (e.key.toLowerCase() === "t") { e.preventDefault(); toggleFolded(); }
  });

  // Long conversations fold their earlier turns; T opens them all, or folds them back.
  function toggleFolded() {
    const folded = Array.from(document.querySelectorAll("#chat details[data-folded]"));
    const open = folded.some((d) => !d.open);
    folded.forEach((d) => { d.open = open; });
  }

  if (!bench) return;
  const answer = document.getElementById("answer");
  const liveDiff = document.getElementById("live-diff");
  const selectedDraft = () => document.querySelector("input[name=draft_id]:checked");
  const replyDraft = document.getElementById("reply-draft");
  const showDraft = () => { if (replyDraft && selectedDraft()) replyDraft.textContent = selectedDraft().dataset.text; };
  showDraft();

  // Earlier assistant turns, where the project lets people edit them: they grow with their text and
  // say when they differ from the turn as imported.
  const turnEdits = Array.from(document.querySelectorAll("textarea[data-turn-edit]"));
  const fit = (area) => { area.style.height = "auto"; area.style.height = `${area.scrollHeight + 2}px`; };
  turnEdits.forEach((area) => {
    const turn = area.closest(".turn");
    const changes = turn.querySelector(".original");
    const mark = () => {
      const edited = area.value !== area.dataset.original;
      turn.classList.toggle("edited", edited);
      if (changes) {
        changes.hidden = !edited;
        renderDiff(changes.querySelector(".diff"), area.dataset.original, area.value);
      }
    };
    fit(area);
    area.addEventListener("input", () => { fit(area); mark(); scheduleAutosave(); });
    area.closest("details").addEventListener("toggle", () => fit(area));
  });

  // Annotator: diff of the answer against the draft they started from.
  const refreshLiveDiff = () => renderDiff(liveDiff, selectedDraft() ? selectedDraft().dataset.text : "", answer.value);
  if (liveDiff) {
    refreshLiveDiff();
    answer.addEventListener("input", refreshLiveDiff);
    let previous = selectedDraft();
    document.querySelectorAll("input[name=draft_id]").forEach((radio) => radio.addEventListener("change", () => {
      const untouched = !previous || answer.value === previous.dataset.text;
      if (untouched || window.confirm(answer.dataset.replacePrompt || "Replace your text with this draft?")) {
        answer.value = radio.dataset.text;
      }
      previous = radio;
      showDraft();
      refreshLiveDiff();
      scheduleAutosave();
    }));
  }
  // Reviewer: diff of the answer under review against the model's draft.
  const draftPane = document.getElementById("draft-text");
  const revisionPane = document.getElementById("revision-text");
  if (draftPane && revisionPane) renderDiff(document.getElementById("review-diff"), draftPane.textContent.trim(), revisionPane.textContent.trim());

  // Autosave a second after typing stops, so a reload loses nothing.
  let autosaveTimer;
  function scheduleAutosave() {
    clearTimeout(autosaveTimer);
    autosaveTimer = setTimeout(() => {
      const body = { text: answer.value };
      if (selectedDraft()) body.draft_id = Number(selectedDraft().value);
      if (turnEdits.length) body.turns = Object.fromEntries(turnEdits.map((area) => [area.name.slice("turn-".length), area.value]));
      fetch(bench.dataset.autosaveUrl, {
        method: "POST",
        body: JSON.stringify(body),
        headers: { "X-CSRFToken": csrf(), "Content-Type": "application/json" },
        credentials: "same-origin",
      }).then((r) => { bench.dataset.autosaved = r.ok ? "yes" : "failed"; });
      renewLease();
    }, 1000);
  }
  answer.addEventListener("input", scheduleAutosave);

  // The lease: renewed while the person works, with a warning two minutes before it ends.
  let expires = new Date(bench.dataset.leaseExpires);
  let lastRenewal = Date.now();
  function renewLease(force) {
    if (!force && Date.now() - lastRenewal < 60_000) return;
    lastRenewal = Date.now();
    fetch(bench.dataset.leaseUrl, { method: "POST", headers: { "X-CSRFToken": csrf() }, credentials: "same-origin" })
      .then((r) => r.ok ? r.json() : null)
      .then((data) => { if (data && data.lease_expires_at) { expires = new Date(data.lease_expires_at); checkLease(); } });
  }
  const warning = document.getElementById("lease-warning");
  function checkLease() { warning.hidden = expires - Date.now() > 120_000; }
  setInterval(checkLease, 5_000);
  checkLease();
  document.addEventListener("keydown", () => renewLease(false));
})();

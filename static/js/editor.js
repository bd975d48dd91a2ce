// Rubric editor: keyboard shortcuts, selection, drag-and-drop reordering (SortableJS).
// Every change goes to the server through the htmx forms in the editor fragment; this
// file only drives those forms from the keyboard and keeps the selection across swaps.
(function () {
  "use strict";

  let selectedKey = null;

  const editor = () => document.getElementById("editor");
  const rows = () => Array.from(document.querySelectorAll("#criteria-list > li[data-key]"));
  const canEdit = () => editor() && editor().dataset.canEdit === "1";

  function select(row, focus) {
    rows().forEach((r) => r.classList.toggle("selected", r === row));
    if (!row) return;
    selectedKey = row.dataset.key;
    if (focus !== false) row.focus({ preventScroll: false });
  }

  function selectedRow() {
    return rows().find((r) => r.dataset.key === selectedKey) || null;
  }

  function step(delta) {
    const all = rows();
    if (!all.length) return;
    const at = all.indexOf(selectedRow());
    const next = at < 0 ? (delta > 0 ? 0 : all.length - 1) : Math.max(0, Math.min(all.length - 1, at + delta));
    select(all[next]);
  }

  function click(row, selector) {
    const el = row && row.querySelector(selector);
    if (el && !el.disabled) el.click();
  }

  function openAddForm() {
    const card = document.getElementById("add-card");
    if (!card) return;
    card.open = true;
    const text = card.querySelector("textarea[name=text]");
    if (text) text.focus();
  }

  // The rubric toolbar (sticky above the editor): open a form or panel below and bring it
  // into view, whatever was swapped in since.
  function openPanel(id) {
    const target = document.getElementById(id);
    if (!target) return;
    if (target.tagName === "DETAILS") target.open = true;
    target.scrollIntoView({ block: "center" });
    const field = target.querySelector("textarea, input:not([type=hidden]), select, button");
    if (field) field.focus({ preventScroll: true });
  }

  document.addEventListener("click", (event) => {
    const opener = event.target instanceof Element && event.target.closest("[data-open]");
    if (!opener) return;
    event.preventDefault();
    openPanel(opener.getAttribute("data-open"));
  });

  function toggleHelp() {
    const dialog = document.getElementById("shortcuts");
    if (!dialog) return;
    if (dialog.open) dialog.close();
    else dialog.showModal();
  }

  // A freshly rendered form asks for focus with data-focus (never autofocus: Chromium
  // applies autofocus to inserted content a frame later, after the person may already
  // have moved on). The request is taken once, by the swap that brought it, and only
  // when no field has focus, so typing is never moved into another field; later swaps
  // (panels loading inside the editor) find no request left.
  function focusRequested(ed) {
    const wanted = ed.querySelector("[data-focus]");
    if (!wanted) return;
    wanted.removeAttribute("data-focus");
    const active = document.activeElement;
    const typing = active && active.isConnected && active.matches("input, textarea, select, [contenteditable]");
    if (typing) return;
    wanted.focus();
    if (wanted.setSelectionRange) wanted.setSelectionRange(wanted.value.length, wanted.value.length);
  }

  function setup() {
    const ed = editor();
    if (!ed) return;
    const editing = ed.dataset.editing;
    if (editing) selectedKey = editing;
    const row = selectedRow();
    if (row && !editing) select(row, !document.activeElement || document.activeElement === document.body);
    focusRequested(ed);
    const list = document.getElementById("criteria-list");
    if (list && canEdit() && window.Sortable && !list.dataset.sortable) {
      list.dataset.sortable = "1";
      window.Sortable.create(list, {
        handle: ".handle",
        draggable: "li[data-key]",
        animation: 120,
        forceFallback: true,
        onEnd(event) {
          if (event.oldIndex === event.newIndex) return;
          const form = document.getElementById("reorder-form");
          form.querySelector("input[name=keys]").value = rows().map((r) => r.dataset.key).join(",");
          selectedKey = event.item.dataset.key;
          form.requestSubmit();
        },
      });
    }
  }

  document.addEventListener("click", (event) => {
    const row = event.target.closest("#criteria-list > li[data-key]");
    if (row && !row.classList.contains("editing")) select(row, false);
    if (event.target.closest("[data-show-shortcuts]")) toggleHelp();
  });

  document.addEventListener("dblclick", (event) => {
    const text = event.target.closest("#criteria-list > li[data-key] .ctext");
    if (text && canEdit()) click(text.closest("li"), "[data-edit]");
  });

  document.addEventListener("keydown", (event) => {
    const ed = editor();
    if (!ed) return;
    const target = event.target;
    const inField = target.closest && target.closest("input, textarea, select, [contenteditable]");

    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      // In a form: submit that form (criterion, comment, note…). Elsewhere: save a version.
      const form = target.closest && target.closest("#editor form");
      const save = document.getElementById("save-form");
      event.preventDefault();
      if (form) form.requestSubmit();
      else if (save && !save.querySelector("#save-version").disabled) save.requestSubmit();
      return;
    }
    if (event.key === "Escape") {
      const dialog = document.getElementById("shortcuts");
      if (dialog && dialog.open) return; // the dialog closes itself
      // Cancel the open criterion edit only from inside it or from outside any field, so
      // that text typed in another form is never thrown away by a re-render.
      const cancel = ed.querySelector("[data-cancel]");
      const inEdit = target.closest && target.closest("li.editing");
      if (cancel && (inEdit || !inField)) {
        event.preventDefault();
        cancel.click();
      } else if (inField) {
        target.blur();
      }
      return;
    }
    if (inField || event.ctrlKey || event.metaKey) return;

    const row = selectedRow();
    if (event.altKey && (event.key === "ArrowUp" || event.key === "ArrowDown")) {
      event.preventDefault();
      click(row, event.key === "ArrowUp" ? "[data-move-up]" : "[data-move-down]");
      return;
    }
    if (event.altKey) return;
    switch (event.key) {
      case "?":
        event.preventDefault();
        toggleHelp();
        break;
      case "j":
      case "ArrowDown":
        event.preventDefault();
        step(1);
        break;
      case "k":
      case "ArrowUp":
        event.preventDefault();
        step(-1);
        break;
      case "n":
        if (!canEdit()) return;
        event.preventDefault();
        openAddForm();
        break;
      case "e":
      case "Enter":
        if (!canEdit() || !row || target.closest("a, button, summary")) return;
        event.preventDefault();
        click(row, "[data-edit]");
        break;
      case "d":
        if (!canEdit() || !row) return;
        event.preventDefault();
        click(row, "[data-duplicate]");
        break;
      case "Delete":
        if (!canEdit() || !row) return;
        event.preventDefault();
        step(1);
        if (selectedKey === row.dataset.key) step(-1);
        click(row, "[data-delete]");
        break;
    }
  });

  document.addEventListener("DOMContentLoaded", setup);
  document.addEventListener("htmx:afterSettle", setup);
})();

// Reviewing pairs from the keyboard. 1 / 2 / 3 choose A, B or tie; Enter commits (Ctrl+Enter
// from the rationale); once committed, n or j opens the next pair and k the previous one;
// u undoes the last decision; r writes the rationale (Esc leaves it); ? shows the keys.
// Every action goes through the page's own forms and links (which also work without this
// file); this file only measures the time on the pair and drives them from the keyboard.
(function () {
  "use strict";

  const shownAt = performance.now();

  const decision = () => document.getElementById("decision");

  function say(text) {
    const hint = document.getElementById("review-hint");
    if (hint) hint.textContent = text;
  }

  function choose(value) {
    const form = decision();
    if (!form) return;
    const radio = form.querySelector(`input[name=choice][value="${value}"]`);
    if (!radio) return;
    radio.checked = true;
    say("");
  }

  function commit() {
    const form = decision();
    if (!form || form.dataset.sending) return;
    if (!form.querySelector("input[name=choice]:checked")) {
      say("Choose A, B or tie first: 1, 2 or 3.");
      return;
    }
    form.requestSubmit();
  }

  function follow(selector) {
    const link = document.querySelector(selector);
    if (link) window.location.assign(link.href);
    return Boolean(link);
  }

  function undo() {
    const form = document.getElementById("undo-form");
    if (form) form.requestSubmit();
  }

  function toggleKeys() {
    const dialog = document.getElementById("review-keys");
    if (!dialog) return;
    if (dialog.open) dialog.close();
    else dialog.showModal();
  }

  // The time on the pair goes with the commit, whichever way the form is sent.
  document.addEventListener(
    "submit",
    (event) => {
      const form = event.target;
      if (form.id !== "decision") return;
      const seconds = form.querySelector("input[name=seconds]");
      if (seconds) seconds.value = ((performance.now() - shownAt) / 1000).toFixed(2);
      form.dataset.sending = "1";
    },
    true,
  );

  document.addEventListener("htmx:afterRequest", (event) => {
    const form = decision();
    if (form && event.detail.elt === form) delete form.dataset.sending;
  });

  // After the reveal arrives, put focus on it so screen readers announce it (keys keep
  // working: they are read from the whole document).
  document.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.target && event.detail.target.id !== "review") return;
    const reveal = document.getElementById("judge-verdict");
    if (reveal) reveal.focus({ preventScroll: true });
  });

  document.addEventListener("click", (event) => {
    if (event.target.closest("[data-show-keys]")) toggleKeys();
  });

  // Once the keys dialog closes, focus leaves its Close button, so Enter commits again.
  document.addEventListener(
    "close",
    (event) => {
      const dialog = event.target;
      if (dialog.id === "review-keys" && dialog.contains(document.activeElement)) {
        document.activeElement.blur();
      }
    },
    true,
  );

  document.addEventListener("keydown", (event) => {
    if (!document.getElementById("review-page")) return;
    const dialog = document.getElementById("review-keys");
    if (dialog && dialog.open) {
      if (event.key === "?") {
        event.preventDefault();
        dialog.close();
      }
      return; // Esc and the dialog's own button close it
    }
    // A key pressed right after the dialog closed may still name its Close button as the
    // target, before the browser has moved focus back to the page: read it from the page.
    let target = event.target instanceof Element ? event.target : document.body;
    if (target.closest("dialog:not([open])")) target = document.body;
    const typing = target.closest(
      "textarea, select, [contenteditable], input:not([type=radio]):not([type=checkbox])",
    );

    if (event.key === "Enter") {
      if (event.ctrlKey || event.metaKey) {
        if (!decision()) return;
        event.preventDefault();
        commit();
        return;
      }
      // Enter keeps its meaning in text, on buttons, links and in other forms.
      if (typing || target.closest("button, a, summary, #flags")) return;
      if (!decision()) return;
      event.preventDefault();
      commit();
      return;
    }
    if (event.key === "Escape" && typing) {
      target.blur();
      return;
    }
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;

    switch (event.key) {
      case "1":
        event.preventDefault();
        choose("A");
        break;
      case "2":
        event.preventDefault();
        choose("B");
        break;
      case "3":
        event.preventDefault();
        choose("tie");
        break;
      case "n":
      case "j":
        event.preventDefault();
        if (!follow("[data-key-next]") && decision()) say("Commit your decision first (Enter).");
        break;
      case "k":
        event.preventDefault();
        follow("[data-key-prev]");
        break;
      case "u":
        event.preventDefault();
        undo();
        break;
      case "r": {
        const rationale = document.querySelector("#decision textarea[name=rationale]");
        if (!rationale) return;
        event.preventDefault();
        rationale.focus();
        break;
      }
      case "?":
        event.preventDefault();
        toggleKeys();
        break;
      default:
        break;
    }
  });
})();

// Adjudicating from the keyboard, with the review page's keys: 1 / 2 / 3 choose response a,
// response b or tie for the pair in focus; Enter sets the final label; n or j moves to the
// next pair, k to the previous one; ? shows the keys. Every action goes through the page's
// own forms (which also work without this file).
(function () {
  "use strict";

  const page = () => document.getElementById("adjudicate-page");
  const pairs = () => Array.from(document.querySelectorAll("#adjudicate-page [data-pair]"));
  let current = null;

  function focusPair(pair) {
    if (!pair) return;
    if (current) current.classList.remove("current");
    current = pair;
    pair.classList.add("current");
    pair.focus({ preventScroll: true });
    pair.scrollIntoView({ block: "nearest" });
  }

  function open() {
    return pairs().filter((pair) => !pair.hasAttribute("data-settled"));
  }

  function move(step) {
    const all = pairs();
    if (!all.length) return;
    const at = current ? all.indexOf(current) : -1;
    const next = all[Math.min(Math.max(at + step, 0), all.length - 1)];
    focusPair(next || all[0]);
  }

  function choose(value) {
    const pair = current || open()[0];
    if (!pair) return;
    focusPair(pair);
    const radio = pair.querySelector(`input[name=winner][value="${value}"]`);
    if (radio) radio.checked = true;
  }

  function settle() {
    const form = current && current.querySelector("form.adjudicate-form");
    if (!form) return;
    if (!form.querySelector("input[name=winner]:checked")) {
      const first = form.querySelector("input[name=winner]");
      if (first) first.reportValidity();
      return;
    }
    form.requestSubmit();
  }

  function toggleKeys() {
    const dialog = document.getElementById("review-keys");
    if (!dialog) return;
    if (dialog.open) dialog.close();
    else dialog.showModal();
  }

  document.addEventListener("focusin", (event) => {
    const pair = event.target instanceof Element && event.target.closest("[data-pair]");
    if (pair && pair !== current) focusPair(pair);
  });

  // A settled pair comes back in place of the form: go on to the next open one.
  document.addEventListener("htmx:afterSettle", () => {
    if (!page() || !current) return;
    const replaced = document.getElementById(current.id);
    if (!replaced) return;
    current = null;
    if (!replaced.hasAttribute("data-settled")) {
      focusPair(replaced);
      return;
    }
    const all = pairs();
    const after = all.slice(all.indexOf(replaced) + 1).find((p) => !p.hasAttribute("data-settled"));
    focusPair(after || open()[0] || replaced);
  });

  document.addEventListener("click", (event) => {
    if (event.target.closest("[data-show-keys]")) toggleKeys();
  });

  document.addEventListener("keydown", (event) => {
    if (!page()) return;
    const dialog = document.getElementById("review-keys");
    if (dialog && dialog.open) {
      if (event.key === "?") {
        event.preventDefault();
        dialog.close();
      }
      return;
    }
    const target = event.target instanceof Element ? event.target : document.body;
    if (target.closest("textarea, select, [contenteditable], input:not([type=radio])")) return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    switch (event.key) {
      case "1":
        event.preventDefault();
        choose("a");
        break;
      case "2":
        event.preventDefault();
        choose("b");
        break;
      case "3":
        event.preventDefault();
        choose("tie");
        break;
      case "Enter":
        if (target.closest("button, a, summary")) return;
        event.preventDefault();
        settle();
        break;
      case "n":
      case "j":
        event.preventDefault();
        move(1);
        break;
      case "k":
        event.preventDefault();
        move(-1);
        break;
      case "?":
        event.preventDefault();
        toggleKeys();
        break;
      default:
        break;
    }
  });

  focusPair(open()[0]);
})();

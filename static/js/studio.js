// Behaviour every page shares, written here rather than in inline handlers (the
// Content-Security-Policy allows scripts from static files only):
// - a form with data-confirm="question" asks before it submits;
// - a field with data-select-on-click selects its whole text when clicked (the API token).
document.addEventListener(
  "submit",
  (event) => {
    const form = event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
      event.stopPropagation();
    }
  },
  true,
);
document.addEventListener("click", (event) => {
  const field = event.target.closest("[data-select-on-click]");
  if (field) field.select();
});

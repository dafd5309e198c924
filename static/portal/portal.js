// Small conveniences; every page works without them.
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var message = form.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
    }
  });
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-target]");
    if (!button) return;
    var target = document.getElementById(button.getAttribute("data-copy-target"));
    if (!target || !navigator.clipboard) return;
    navigator.clipboard.writeText(target.textContent.trim()).then(function () {
      // Remember the original label once, so a second click during "Copied" cannot replace it.
      if (!button.hasAttribute("data-copy-label")) button.setAttribute("data-copy-label", button.textContent);
      var label = button.getAttribute("data-copy-label");
      button.textContent = "Copied";
      button.setAttribute("aria-live", "polite");
      setTimeout(function () { button.textContent = label; }, 2000);
    });
  });
  // Submit a data-autosubmit form when a choice is made with the mouse or touch. Not from the
  // keyboard: arrow keys change a closed <select> one step at a time, and each step would
  // navigate away (WCAG 3.2.2); keyboard users press the form's own button instead.
  // Fill in a form's entries kept across step-up (portal/drafts.py): the form is not re-submitted,
  // the person checks it and submits it again. Hidden inputs keep their fresh values.
  var draftElement = document.getElementById("step-up-draft");
  if (draftElement) {
    var draft = JSON.parse(draftElement.textContent);
    var forms = Array.prototype.filter.call(document.forms, function (form) {
      return form.method === "post" && new URL(form.action, location.href).pathname === draft.action;
    });
    if (forms.length) {
      var form = forms[0];
      Object.keys(draft.data).forEach(function (name) {
        var values = draft.data[name];
        Array.prototype.forEach.call(form.querySelectorAll("[name]"), function (field) {
          if (field.name !== name || field.type === "hidden") return;
          if (field.type === "checkbox" || field.type === "radio") {
            field.checked = values.indexOf(field.value) !== -1;
          } else if (field.tagName === "SELECT") {
            Array.prototype.forEach.call(field.options, function (option) {
              option.selected = values.indexOf(option.value) !== -1;
            });
          } else {
            field.value = values[0];
          }
        });
      });
      form.setAttribute("data-step-up-restored", "");
    }
  }
  var keyboardChange = false;
  document.addEventListener("keydown", function () { keyboardChange = true; }, true);
  document.addEventListener("pointerdown", function () { keyboardChange = false; }, true);
  document.addEventListener("change", function (event) {
    var form = event.target.closest("form[data-autosubmit]");
    if (form && !keyboardChange) form.submit();
  });
})();

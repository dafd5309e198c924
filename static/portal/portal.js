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
  var keyboardChange = false;
  document.addEventListener("keydown", function () { keyboardChange = true; }, true);
  document.addEventListener("pointerdown", function () { keyboardChange = false; }, true);
  document.addEventListener("change", function (event) {
    var form = event.target.closest("form[data-autosubmit]");
    if (form && !keyboardChange) form.submit();
  });
})();

// Small conveniences; every page works without them.
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var message = form.getAttribute("data-confirm");
    // Ask "cannot be undone?" only about a form that can go through: an empty required field is
    // sent as it is, so the server's field error comes first, and the question after it is fixed.
    if (message && form.checkValidity() && !window.confirm(message)) {
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
      // Said by screen readers through the page's one status region (a button is no live region).
      var status = document.getElementById("copy-status");
      if (status) status.textContent = "Copied to the clipboard.";
      setTimeout(function () {
        button.textContent = label;
        if (status) status.textContent = "";
      }, 2000);
    });
  });
  // Copy and download buttons, the passkey buttons (data-needs-js) and the forms that ask before they
  // act (data-confirm: without this script a link leads to a confirmation page instead, portal/confirm.py)
  // need this script: the pages render them hidden, shown from here.
  Array.prototype.forEach.call(
    document.querySelectorAll("[data-copy-target],[data-download-target],[data-needs-js],form[data-confirm]"),
    function (element) { element.hidden = false; }
  );
  // Save the text of an element as a file (recovery codes): made in the browser, never sent anywhere.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-download-target]");
    if (!button) return;
    var target = document.getElementById(button.getAttribute("data-download-target"));
    if (!target) return;
    var link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([target.textContent.trim() + "\n"], {type: "text/plain"}));
    link.download = button.getAttribute("data-download-name") || "download.txt";
    document.body.appendChild(link);
    link.click();
    setTimeout(function () { URL.revokeObjectURL(link.href); link.remove(); }, 0);
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
  // Expiry presets beside an `expires_in_days` field (credentials/templatetags/credential_expiry.py):
  // 7/30/60/90 days, or a date from a date picker. They only fill in the number; the server checks it.
  Array.prototype.forEach.call(document.querySelectorAll("input[data-expiry-presets]"), function (input) {
    var maxDays = parseInt(input.getAttribute("data-max-days") || "3650", 10);
    var group = document.createElement("div");
    group.className = "expiry-presets";
    group.setAttribute("role", "group");
    group.setAttribute("aria-label", "Expiry presets");
    var day = 24 * 60 * 60 * 1000;
    var today = new Date();
    today.setHours(0, 0, 0, 0);
    function iso(date) {
      return date.getFullYear() + "-" + String(date.getMonth() + 1).padStart(2, "0") + "-" + String(date.getDate()).padStart(2, "0");
    }
    var picker = document.createElement("input");
    picker.type = "date";
    picker.className = "expiry-date";
    picker.setAttribute("aria-label", "Expires on (date)");
    picker.min = iso(new Date(today.getTime() + day));
    picker.max = iso(new Date(today.getTime() + maxDays * day));
    function show(days) {
      input.value = days;
      picker.value = days ? iso(new Date(today.getTime() + days * day)) : "";
      Array.prototype.forEach.call(group.querySelectorAll("button"), function (button) {
        button.setAttribute("aria-pressed", String(button.getAttribute("data-days") === String(days)));
      });
    }
    [7, 30, 60, 90].forEach(function (days) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "btn btn-small";
      button.textContent = days + " days";
      button.setAttribute("data-days", days);
      button.setAttribute("aria-pressed", "false");
      if (days > maxDays) button.disabled = true;
      button.addEventListener("click", function () { show(days); });
      group.appendChild(button);
    });
    // The date picker waits behind a button: a date input takes several Tab presses to cross.
    var customButton = document.createElement("button");
    customButton.type = "button";
    customButton.className = "btn btn-small";
    customButton.textContent = "Custom date…";
    customButton.setAttribute("aria-expanded", "false");
    var custom = document.createElement("label");
    custom.className = "expiry-custom";
    custom.hidden = true;
    custom.appendChild(document.createTextNode("Expires on "));
    custom.appendChild(picker);
    customButton.addEventListener("click", function () {
      custom.hidden = false;
      customButton.setAttribute("aria-expanded", "true");
      picker.focus();
    });
    group.appendChild(customButton);
    group.appendChild(custom);
    picker.addEventListener("change", function () {
      if (!picker.value) return;
      var parts = picker.value.split("-");
      var chosen = new Date(parseInt(parts[0], 10), parseInt(parts[1], 10) - 1, parseInt(parts[2], 10));
      var days = Math.round((chosen - today) / day);
      if (days >= 1) show(days);
    });
    input.addEventListener("input", function () {
      var days = parseInt(input.value, 10);
      picker.value = days >= 1 ? iso(new Date(today.getTime() + days * day)) : "";
    });
    // Before the number field, so Tab goes from the exact number straight on to the form's button.
    input.insertAdjacentElement("beforebegin", group);
    if (input.value) input.dispatchEvent(new Event("input"));
  });
  var keyboardChange = false;
  document.addEventListener("keydown", function () { keyboardChange = true; }, true);
  document.addEventListener("pointerdown", function () { keyboardChange = false; }, true);
  document.addEventListener("change", function (event) {
    var form = event.target.closest("form[data-autosubmit]");
    if (form && !keyboardChange) form.submit();
  });
})();

/* Errors next to what caused them.

   The server refuses a form or a control press with its real status (400, 403, 429, 503) and
   the reason as text; htmx then swaps nothing and fires htmx:responseError. The reason goes in
   a slot right after the form that was sent (a vote, a question, an upload), which takes the
   focus so a keyboard or screen-reader user lands on it; a refused playback or fault press goes
   in #controls-error, inside the sticky toolbar (so in view however far down the press was
   made), without moving the focus off the pressed button. The slot clears on that form's next
   success. The connection's own notices (#ws-error: a room that ended, a refused resync) clear
   on the next press that gets through. */
(function () {
  "use strict";

  function formOf(elt) {
    if (!elt || elt === document.body || !elt.closest) return null;
    return elt.closest("form") || elt;
  }

  function slotFor(elt, make) {
    var form = formOf(elt);
    if (!form || /\/control\/$/.test(form.getAttribute("hx-post") || "")) {
      return document.getElementById("controls-error");
    }
    // A form that names where its answer goes (the upload's #upload-result) gets its error
    // there too; its next success replaces it (so it is never cleared here: make is false).
    var target = form.getAttribute("hx-target");
    var named = target && document.querySelector(target);
    if (named) return make ? named : null;
    var next = form.nextElementSibling;
    if (next && next.classList.contains("inline-error")) return next;
    if (!make) return null;
    var slot = document.createElement("p");
    slot.className = "inline-error";
    slot.setAttribute("role", "alert");
    slot.tabIndex = -1;
    form.insertAdjacentElement("afterend", slot);
    return slot;
  }

  function show(slot, xhr) {
    var type = xhr.getResponseHeader("Content-Type") || "";
    var body = (xhr.responseText || "").trim();
    if (!body) body = "The lab refused that (HTTP " + xhr.status + ").";
    if (type.indexOf("text/html") === 0) {
      slot.innerHTML = body; // the lab's own template, escaped on the server
    } else {
      slot.textContent = body;
    }
    slot.hidden = false;
  }

  document.addEventListener("htmx:responseError", function (evt) {
    var slot = slotFor(evt.detail.elt, true);
    if (!slot) return;
    show(slot, evt.detail.xhr);
    if (slot.id !== "controls-error") {
      var target = slot.querySelector("[tabindex]") || slot;
      if (!target.hasAttribute("tabindex")) target.tabIndex = -1;
      target.focus();
    }
  });

  document.addEventListener("htmx:afterRequest", function (evt) {
    if (!evt.detail.successful) return;
    var slot = slotFor(evt.detail.elt, false);
    if (slot) slot.textContent = "";
    var notice = document.getElementById("ws-error");
    if (notice) notice.textContent = "";
  });
})();

/* Delivery Lab compare page: two panes, each a room page in a frame (its own room.js, frames and
   WebSocket). This file only joins them: every control pressed in either pane (playback,
   scrubber, faults) goes to the compare's control URL, which applies it to both; each pane's
   verdict headline is repeated at the top; on a phone, tabs pick the pane shown. */
(function () {
  "use strict";

  var compare = null;
  var sent = Promise.resolve();

  function csrfToken() {
    var headers = document.body.getAttribute("hx-headers");
    try {
      return JSON.parse(headers || "{}")["X-CSRFToken"] || "";
    } catch (e) {
      return "";
    }
  }

  function showError(text) {
    var el = document.getElementById("compare-error");
    if (el) el.textContent = text;
  }

  // One press at a time, in the order made, each with the button or position it was made with.
  function press(side, form, submitter) {
    var values = new URLSearchParams();
    new FormData(form, submitter || null).forEach(function (value, name) {
      if (name !== "csrfmiddlewaretoken") values.append(name, value);
    });
    var url = compare.dataset.control.replace("SIDE", side);
    sent = sent
      .then(function () {
        return fetch(url, {
          method: "POST",
          body: values,
          headers: { "X-CSRFToken": csrfToken() },
          credentials: "same-origin",
        });
      })
      .then(function (response) {
        if (response.ok) {
          showError("");
          return null;
        }
        return response.text().then(showError);
      })
      .catch(function () {
        showError("A press did not reach the lab (no connection): press it again.");
      });
  }

  function isControlForm(form) {
    return !!form && form.tagName === "FORM" && /\/control\/$/.test(form.getAttribute("hx-post") || "");
  }

  function mirrorVerdict(side, doc) {
    var target = document.querySelector("#verdict-" + side + " .pane-verdict-text");
    var headline = doc.querySelector("#verdict .verdict-headline");
    if (target && headline) target.textContent = headline.textContent.replace(/\s+/g, " ").trim();
  }

  // The capture phase on the pane's window runs before room.js's own listeners on its document:
  // the press goes to both panes instead of to this pane's room alone.
  function hook(frame) {
    var side = frame.id.replace("frame-", "");
    var win = frame.contentWindow;
    var doc = frame.contentDocument;
    // Not the frame's first, empty document (whose window the room page may go on using).
    if (!win || !doc || !doc.getElementById("room") || doc.labPaneHooked) return;
    doc.labPaneHooked = true;
    doc.addEventListener("htmx:wsAfterMessage", function () {
      mirrorVerdict(side, doc);
    });
    mirrorVerdict(side, doc);
    if (win.labPaneHooked) return;
    win.labPaneHooked = true;
    win.addEventListener("submit", function (evt) {
      if (!isControlForm(evt.target)) return;
      evt.preventDefault();
      evt.stopImmediatePropagation();
      press(side, evt.target, evt.submitter);
    }, true);
    win.addEventListener("change", function (evt) {
      var target = evt.target;
      if (!target || target.id !== "scrubber" || !isControlForm(target.form)) return;
      evt.stopImmediatePropagation();
      press(side, target.form, null);
    }, true);
  }

  function paneDoc(side) {
    var frame = document.getElementById("frame-" + side);
    return frame ? frame.contentDocument : null;
  }

  // Keys pressed on the compare page itself go to pane A's controls (and so to both panes);
  // keys pressed inside a pane are the room's own (room.js), and end up in the same place.
  function keydown(evt) {
    if (compare.dataset.role !== "presenter") return;
    var tag = (evt.target && evt.target.tagName) || "";
    if (/^(INPUT|TEXTAREA|SELECT|BUTTON)$/.test(tag) || evt.ctrlKey || evt.metaKey || evt.altKey) return;
    var selector = null;
    if (evt.key === " " || evt.key === "b" || evt.key === "B" || evt.key === ".") selector = "#btn-play-pause";
    else if (evt.key === "ArrowRight" || evt.key === "PageDown") selector = "#btn-step";
    else if (evt.key === "ArrowLeft" || evt.key === "PageUp") selector = "#btn-back";
    else if (/^[1-8]$/.test(evt.key)) selector = '.speed[data-key="' + evt.key + '"]';
    var doc = paneDoc("a");
    var el = selector && doc ? doc.querySelector(selector) : null;
    if (!el || el.disabled) return;
    evt.preventDefault();
    el.click();
  }

  function showPane(side) {
    document.querySelectorAll(".pane").forEach(function (pane) {
      pane.classList.toggle("is-shown", pane.dataset.side === side);
    });
    document.querySelectorAll(".pane-tab").forEach(function (tab) {
      tab.setAttribute("aria-selected", tab.id === "tab-" + side ? "true" : "false");
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    compare = document.getElementById("compare");
    if (!compare) return;
    document.querySelectorAll(".pane-frame").forEach(function (frame) {
      frame.addEventListener("load", function () { hook(frame); });
      if (frame.contentDocument && frame.contentDocument.readyState === "complete") hook(frame);
    });
    document.querySelectorAll(".pane-tab").forEach(function (tab) {
      tab.addEventListener("click", function () { showPane(tab.id.replace("tab-", "")); });
    });
    document.addEventListener("keydown", keydown);
  });
})();

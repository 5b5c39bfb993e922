/* Delivery Lab room page: frame sequence checks, keyboard, highlights, theme. No framework:
   htmx and its ws extension do the swapping; this file only adds what htmx cannot know. */
(function () {
  "use strict";

  var lastSeq = -1;
  var socket = null;

  function seqOf(message) {
    var m = /^<output id="frame-seq" data-seq="(\d+)" data-kind="(\w+)"/.exec(message);
    return m ? { seq: parseInt(m[1], 10), kind: m[2] } : null;
  }

  function setConn(text, ok) {
    var el = document.getElementById("conn");
    if (el) {
      el.textContent = text;
      el.classList.toggle("is-ok", !!ok);
    }
  }

  document.addEventListener("htmx:wsOpen", function (evt) {
    socket = evt.detail.socketWrapper;
    setConn("live", true);
  });
  document.addEventListener("htmx:wsClose", function () {
    setConn("reconnecting…", false);
  });

  // A gap in the sequence means a lost frame: ask for a full snapshot instead of applying it.
  // Every frame received, in order (sequence and kind): what a test or a curious user can check.
  window.labFrames = [];
  document.addEventListener("htmx:wsBeforeMessage", function (evt) {
    var info = seqOf(evt.detail.message);
    if (!info) return; // an error frame: no sequence
    if (window.labFrames.length < 100000) window.labFrames.push([info.seq, info.kind]);
    if (info.kind === "full") {
      lastSeq = info.seq;
      return;
    }
    if (info.seq <= lastSeq) {
      evt.preventDefault(); // already applied (it raced the snapshot)
      return;
    }
    if (lastSeq >= 0 && info.seq !== lastSeq + 1) {
      evt.preventDefault();
      lastSeq = -1;
      if (socket) socket.send(JSON.stringify({ action: "resync" }), null);
      return;
    }
    lastSeq = info.seq;
  });

  // A frame replaces the panels it changes, and with them the focused button or the scrubber:
  // put the keyboard focus back on the same control (found again by id, or by name and value).
  var focusKey = null;
  function keyOf(el) {
    if (!el || el === document.body || !el.closest || !el.closest("#room")) return null;
    if (el.id) return "#" + CSS.escape(el.id);
    if (el.name && el.value !== undefined) {
      var panel = el.closest("[id]");
      return (panel ? "#" + CSS.escape(panel.id) + " " : "") + el.tagName.toLowerCase() +
        '[name="' + CSS.escape(el.name) + '"][value="' + CSS.escape(el.value) + '"]';
    }
    return null;
  }
  document.addEventListener("htmx:wsBeforeMessage", function () {
    focusKey = keyOf(document.activeElement);
  });
  function restoreFocus() {
    var active = document.activeElement;
    if (!focusKey || (active && active !== document.body && active.isConnected)) return;
    var el = document.querySelector(focusKey);
    if (el && !el.disabled) el.focus({ preventScroll: true });
  }

  document.addEventListener("htmx:wsAfterMessage", function () {
    restoreFocus();
    var room = document.getElementById("room");
    if (room) room.dataset.seq = String(lastSeq);
    syncTitle();
    afterFrames();
  });

  // What a frame's swap undid (a lane's scroll, highlights, the chosen views, the vote mark) is
  // put back once per animation frame, just before the browser paints, not once per message:
  // at 16x several messages can arrive between two paints, and reading the layout after each
  // swap made the browser lay the page out again for every one (manage.py bench_browser).
  var queued = false;
  function afterFrames() {
    if (queued) return;
    queued = true;
    requestAnimationFrame(function () {
      queued = false;
      restoreScroll();
      reapplyHighlight();
      reapplyViews();
      reapplyVote();
    });
  }

  // The tab's title follows the run header: neutral while a question is open (the scenario's
  // title would answer it), the scenario's again after the reveal.
  function syncTitle() {
    var heading = document.querySelector("#run-header h1");
    if (!heading) return;
    var title = heading.textContent.trim() + " \u00b7 Delivery Lab";
    if (document.title !== title) document.title = title;
  }

  // "As read_committed / as read_uncommitted": which cells a reader would get. The server marks
  // each cell (data-rc, data-ru) and words the result under the lane; this only picks the view,
  // per lane, and keeps it across frames that re-render the lanes.
  var views = {};
  function reapplyViews() {
    document.querySelectorAll(".view-toggle").forEach(function (toggle) {
      var lane = document.getElementById("lane-" + toggle.dataset.lane);
      var view = views[toggle.dataset.lane] || "log";
      if (lane) lane.dataset.view = view;
      toggle.querySelectorAll("input").forEach(function (input) {
        input.checked = input.value === view;
      });
    });
  }
  document.addEventListener("change", function (evt) {
    var toggle = evt.target.closest ? evt.target.closest(".view-toggle") : null;
    if (!toggle) return;
    views[toggle.dataset.lane] = evt.target.value;
    reapplyViews();
  });

  // Lanes follow their newest cell unless someone scrolled back to look at older ones. Whether
  // a lane follows is noted when it scrolls (by hand, or by restoreScroll), not read before each
  // frame: that read made the browser lay the page out once more per frame.
  var following = {};
  document.addEventListener("scroll", function (evt) {
    var el = evt.target;
    if (!el.classList || !el.classList.contains("lane-scroll")) return;
    var id = el.parentElement ? el.parentElement.id : "";
    following[id] = el.scrollLeft + el.clientWidth >= el.scrollWidth - 8;
  }, { capture: true, passive: true });
  function restoreScroll() {
    document.querySelectorAll(".lane-scroll").forEach(function (el) {
      var id = el.parentElement ? el.parentElement.id : "";
      if (following[id] !== false) el.scrollLeft = el.scrollWidth;
    });
  }

  // Clicking an anomaly highlights its cells (and clicking again clears it). A room that
  // paused itself on an anomaly (pause on anomaly) marks its card .is-cause: highlighted once,
  // as if clicked.
  var highlighted = "";
  var lastCause = "";
  function reapplyHighlight() {
    var cause = document.querySelector(".anomaly.is-cause");
    var causeCells = cause ? cause.dataset.cells || "" : "";
    if (causeCells !== lastCause) {
      lastCause = causeCells;
      if (causeCells) highlighted = causeCells;
    }
    document.querySelectorAll(".cell.is-highlighted").forEach(function (el) {
      el.classList.remove("is-highlighted");
    });
    document.querySelectorAll(".anomaly").forEach(function (button) {
      var on = highlighted !== "" && button.dataset.cells === highlighted;
      button.setAttribute("aria-pressed", on ? "true" : "false");
    });
    if (!highlighted) return;
    highlighted.split(" ").forEach(function (id) {
      var el = document.getElementById(id);
      if (el) el.classList.add("is-highlighted");
    });
  }
  document.addEventListener("click", function (evt) {
    var button = evt.target.closest ? evt.target.closest(".anomaly") : null;
    if (!button) return;
    highlighted = highlighted === button.dataset.cells ? "" : button.dataset.cells || "";
    reapplyHighlight();
    var first = highlighted && document.getElementById(highlighted.split(" ")[0]);
    if (first && first.scrollIntoView) first.scrollIntoView({ block: "nearest", inline: "center" });
  });

  function click(selector) {
    var el = document.querySelector(selector);
    if (el && !el.disabled) el.click();
  }

  function isPresenter() {
    var room = document.getElementById("room");
    return !!room && room.dataset.role === "presenter";
  }

  function toggle(name, a, b) {
    root.dataset[name] = root.dataset[name] === a ? b : a;
    localStorage.setItem("lab-" + name, root.dataset[name]);
  }

  // Keyboard and presenter remotes (which send Page Up/Down, "b" or "." for blank, F5/Esc).
  document.addEventListener("keydown", function (evt) {
    var tag = (evt.target && evt.target.tagName) || "";
    if (/^(INPUT|TEXTAREA|SELECT)$/.test(tag) || evt.ctrlKey || evt.metaKey || evt.altKey) return;
    if (evt.key === "l" || evt.key === "L") {
      toggle("size", "large", "normal");
      return;
    }
    if (evt.key === "n" || evt.key === "N") {
      toggle("notes", "hidden", "shown");
      return;
    }
    if ((evt.key === "p" || evt.key === "P") && isPresenter()) {
      toggle("projector", "on", "off");
      showProjector();
      return;
    }
    if (!isPresenter()) return; // attendees follow; their controls would be refused anyway
    if (evt.key === " " || evt.key === "Spacebar" || evt.key === "b" || evt.key === "B" || evt.key === ".") {
      if (tag === "BUTTON" && evt.key !== "b" && evt.key !== "B" && evt.key !== ".") return;
      evt.preventDefault();
      click("#btn-play-pause");
    } else if (evt.key === "ArrowRight" || evt.key === "PageDown") {
      evt.preventDefault();
      click("#btn-step");
    } else if (evt.key === "ArrowLeft" || evt.key === "PageUp") {
      evt.preventDefault();
      click("#btn-back");
    } else if (/^[1-8]$/.test(evt.key)) {
      click('.speed[data-key="' + evt.key + '"]');
    }
  });

  // Theme and text size: the system decides unless the user picked one.
  var root = document.documentElement;
  var theme = localStorage.getItem("lab-theme");
  if (theme) root.dataset.theme = theme;
  var size = localStorage.getItem("lab-size");
  if (size) root.dataset.size = size;
  var notes = localStorage.getItem("lab-notes");
  if (notes) root.dataset.notes = notes;
  // Projector mode (presenters): join code big; presenter link, speaker notes and keys off.
  var projector = localStorage.getItem("lab-projector");
  if (projector) root.dataset.projector = projector;
  function showProjector() {
    var button = document.getElementById("projector-toggle");
    if (button) button.setAttribute("aria-pressed", root.dataset.projector === "on" ? "true" : "false");
  }

  // "Copy presenter link": the link never shows unless the clipboard cannot be reached (a
  // plain-http address on the network is not a secure context); then it shows, selected, for
  // as long as it takes to copy it, and hides again.
  var statusTimer = null;
  var hideTimer = null;
  function say(text) {
    var status = document.getElementById("copy-status");
    if (!status) return;
    status.textContent = text;
    clearTimeout(statusTimer);
    statusTimer = setTimeout(function () { status.textContent = ""; }, 5000);
  }
  function hideLink() {
    var box = document.getElementById("presenter-link-box");
    clearTimeout(hideTimer);
    if (box) box.hidden = true;
    var selection = window.getSelection();
    if (selection) selection.removeAllRanges();
  }
  function copyBySelection(link, box) {
    box.hidden = false;
    var range = document.createRange();
    range.selectNodeContents(link);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    var copied = false;
    try {
      copied = document.execCommand("copy");
    } catch (e) {
      copied = false;
    }
    if (copied) {
      hideLink();
      say("copied");
    } else {
      say("copy it now (Ctrl+C): it hides in 15 s");
      hideTimer = setTimeout(hideLink, 15000);
    }
  }
  function copyPresenterLink() {
    var link = document.getElementById("presenter-link");
    var box = document.getElementById("presenter-link-box");
    if (!link || !box) return;
    if (!box.hidden) return hideLink();
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(link.href).then(
        function () { say("copied"); },
        function () { copyBySelection(link, box); }
      );
    } else {
      copyBySelection(link, box);
    }
  }

  // Mark the choice this browser voted for: the server says which in #my-vote (on the page,
  // and in its answer to a vote it counted), so a refused second vote marks nothing.
  function reapplyVote() {
    var panel = document.getElementById("question");
    var mine = document.getElementById("my-vote");
    if (!panel) return;
    var choice = mine && mine.dataset.question === panel.dataset.question ? mine.dataset.choice : null;
    panel.querySelectorAll("button.vote").forEach(function (b) {
      b.classList.toggle("is-mine", b.dataset.choice === choice);
    });
  }
  // An answer to a vote swaps #my-vote out of band (over HTTP, not in a frame).
  document.addEventListener("htmx:oobAfterSwap", afterFrames);
  document.addEventListener("DOMContentLoaded", function () {
    var themeButton = document.getElementById("theme-toggle");
    if (themeButton) {
      themeButton.addEventListener("click", function () {
        var dark = root.dataset.theme
          ? root.dataset.theme === "dark"
          : window.matchMedia("(prefers-color-scheme: dark)").matches;
        root.dataset.theme = dark ? "light" : "dark";
        localStorage.setItem("lab-theme", root.dataset.theme);
      });
    }
    var projectorButton = document.getElementById("projector-toggle");
    if (projectorButton) {
      projectorButton.addEventListener("click", function () {
        toggle("projector", "on", "off");
        showProjector();
      });
    }
    showProjector();
    var copier = document.getElementById("copy-presenter-link");
    if (copier) copier.addEventListener("click", copyPresenterLink);
    var sizer = document.getElementById("size-toggle");
    if (sizer) {
      sizer.addEventListener("click", function () {
        toggle("size", "large", "normal");
      });
    }
    var seq = document.getElementById("frame-seq");
    if (seq) lastSeq = parseInt(seq.dataset.seq, 10);
    restoreScroll();
    reapplyVote();
  });
})();

/* Presses on a room's controls (playback, faults, the history scrubber) go out one at a time, in
   the order they were made, each with the button or position it was made with, and each once.
   htmx's own queue (hx-sync) cannot promise that here: a waiting press stays on its form and
   reads the pressed button only when it is finally sent, and the frame answering the press
   before it often redraws that form (the first step enables "back"); htmx then drops the waiting
   press without a word. A refusal (rate limit, no worker) shows in #controls-error (errors.js). */
(function () {
  "use strict";

  var sent = Promise.resolve();

  function isControlForm(form) {
    return !!form && form.tagName === "FORM" && /\/control\/$/.test(form.getAttribute("hx-post") || "");
  }

  function press(form, submitter) {
    var values = {};
    new FormData(form, submitter || null).forEach(function (value, name) {
      values[name] = value;
    });
    var url = form.getAttribute("hx-post");
    sent = sent
      .then(function () {
        return htmx.ajax("POST", url, { source: document.body, values: values, swap: "none" });
      })
      .catch(function () {
        var error = document.getElementById("ws-error");
        if (error) error.textContent = "A press did not reach the lab (no connection): press it again.";
      });
  }

  // Capture phase: ahead of htmx's own listener on the form (or on the scrubber).
  document.addEventListener("submit", function (evt) {
    if (!isControlForm(evt.target)) return;
    evt.preventDefault();
    evt.stopPropagation();
    press(evt.target, evt.submitter);
  }, true);
  document.addEventListener("change", function (evt) {
    if (!evt.target || evt.target.id !== "scrubber" || !isControlForm(evt.target.form)) return;
    evt.stopPropagation();
    press(evt.target.form, null);
  }, true);
})();

/* A frame that redraws a panel of buttons (the controls, the faults) keeps the buttons that are
   there: when the new panel has the same elements, only their attributes and text are brought
   up to date, in place. Replaced, a button under the pointer is another element by the time the
   mouse button comes up, and the browser fires no click: under load a second quick press on
   "step" was lost that way (tests/scaleout). Any other change (an element more or less, another
   tag, an htmx attribute) is swapped whole, as before. */
(function () {
  "use strict";

  // Whether ``next`` can be written onto ``current`` in place: the same tree of elements.
  function sameShape(current, next) {
    if (current.nodeType !== next.nodeType) return false;
    if (current.nodeType !== Node.ELEMENT_NODE) return true;
    if (current.tagName !== next.tagName) return false;
    for (var i = 0; i < next.attributes.length; i++) {
      var name = next.attributes[i].name;
      if (/^(data-)?hx-/.test(name) && current.getAttribute(name) !== next.attributes[i].value) {
        return false;
      }
    }
    if (current.childNodes.length !== next.childNodes.length) return false;
    for (var j = 0; j < next.childNodes.length; j++) {
      if (!sameShape(current.childNodes[j], next.childNodes[j])) return false;
    }
    return true;
  }

  function patch(current, next) {
    if (current.nodeType !== Node.ELEMENT_NODE) {
      if (current.nodeValue !== next.nodeValue) current.nodeValue = next.nodeValue;
      return;
    }
    var i;
    for (i = current.attributes.length - 1; i >= 0; i--) {
      var old = current.attributes[i].name;
      if (!next.hasAttribute(old)) current.removeAttribute(old);
    }
    for (i = 0; i < next.attributes.length; i++) {
      var attr = next.attributes[i];
      if (current.getAttribute(attr.name) !== attr.value) current.setAttribute(attr.name, attr.value);
    }
    // The state the page shows is the server's, as after a whole swap: properties too (a
    // checkbox the user toggled and the lab refused goes back), except the value of the field
    // the user is typing in.
    if ("disabled" in current) current.disabled = next.hasAttribute("disabled");
    if ("checked" in current) current.checked = next.hasAttribute("checked");
    var typed = current.tagName === "INPUT" && !/^(checkbox|radio|hidden|submit|button)$/i.test(current.type);
    if (typed && current !== document.activeElement) {
      current.value = next.getAttribute("value") || "";
    }
    for (i = 0; i < next.childNodes.length; i++) patch(current.childNodes[i], next.childNodes[i]);
  }

  document.addEventListener("htmx:oobBeforeSwap", function (evt) {
    var target = evt.detail.target;
    var fragment = evt.detail.fragment;
    var next = fragment && fragment.firstElementChild;
    if (!target || !next || fragment.childElementCount !== 1 || next.id !== target.id) return;
    if (!target.querySelector("button")) return;
    next.removeAttribute("hx-swap-oob");
    if (!sameShape(target, next)) return;
    patch(target, next);
    evt.detail.shouldSwap = false;
  });
})();

/* The parts of a frame that hold nothing for htmx (no form, no button, no link or field, in the
   part or in what it replaces: lane cells, cursors, most counts) are swapped here, with plain
   DOM calls; the rest go on to htmx as before. htmx's swap walks every element it removes and every one it inserts (an event for each,
   its own bookkeeping), which was about half the script time of a frame at 16x on a busy room
   (manage.py bench_browser). This is an htmx extension (the room's hx-ext names it) whose
   transformResponse takes those parts out of a WebSocket frame before the ws extension swaps
   what is left; the result on the page is the same as htmx's out-of-band swap. */
(function () {
  "use strict";

  // For htmx: a request to make, an extension, a socket; or, in the element the part replaces,
  // something one can focus or press (the patch above keeps those in place).
  var ACTIVE = "[hx-post],[hx-get],[hx-trigger],[hx-ext],[ws-connect],[ws-send]";
  var FOCUSABLE = "button,input,select,textarea,a[href],[tabindex]";

  function plain(part, how, target) {
    if (part.matches(ACTIVE) || part.querySelector(ACTIVE)) return false;
    if (how === "beforeend") return true;
    if (how === "delete") return true;
    return (how === "true" || how === "outerHTML") && !target.querySelector(FOCUSABLE) &&
      !part.querySelector(FOCUSABLE);
  }

  function swapPlainParts(text) {
    if (text.lastIndexOf('<output id="frame-seq"', 0) !== 0) return text; // an error notice
    var template = document.createElement("template");
    template.innerHTML = text;
    var rest = [];
    var part = template.content.firstElementChild;
    while (part) {
      var next = part.nextElementSibling;
      var how = part.getAttribute("hx-swap-oob") || "true";
      var target = part.id ? document.getElementById(part.id) : null;
      if (!target || !plain(part, how, target)) {
        rest.push(part.outerHTML);
      } else if (how === "beforeend") {
        target.append.apply(target, Array.prototype.slice.call(part.childNodes));
      } else if (how === "delete") {
        target.remove();
      } else {
        part.removeAttribute("hx-swap-oob");
        target.replaceWith(part);
      }
      part = next;
    }
    return rest.join("");
  }

  htmx.defineExtension("lab-frames", {
    // Called for the room's HTTP answers too (xhr set): those are left alone.
    transformResponse: function (text, xhr) {
      return xhr ? text : swapPlainParts(text);
    },
  });
})();

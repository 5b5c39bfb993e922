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
    rememberScroll();
  });

  document.addEventListener("htmx:wsAfterMessage", function () {
    var room = document.getElementById("room");
    if (room) room.dataset.seq = String(lastSeq);
    restoreScroll();
    reapplyHighlight();
    reapplyViews();
  });

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

  // Lanes follow their newest cell unless someone scrolled back to look at older ones.
  var following = {};
  function rememberScroll() {
    document.querySelectorAll(".lane-scroll").forEach(function (el) {
      var id = el.parentElement ? el.parentElement.id : "";
      following[id] = el.scrollLeft + el.clientWidth >= el.scrollWidth - 8;
    });
  }
  function restoreScroll() {
    document.querySelectorAll(".lane-scroll").forEach(function (el) {
      var id = el.parentElement ? el.parentElement.id : "";
      if (following[id] !== false) el.scrollLeft = el.scrollWidth;
    });
  }

  // Clicking an anomaly highlights its cells (and clicking again clears it).
  var highlighted = "";
  function reapplyHighlight() {
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
  document.addEventListener("htmx:oobAfterSwap", reapplyVote);
  document.addEventListener("htmx:wsAfterMessage", reapplyVote);
  document.addEventListener("DOMContentLoaded", function () {
    var toggle = document.getElementById("theme-toggle");
    if (toggle) {
      toggle.addEventListener("click", function () {
        var dark = root.dataset.theme
          ? root.dataset.theme === "dark"
          : window.matchMedia("(prefers-color-scheme: dark)").matches;
        root.dataset.theme = dark ? "light" : "dark";
        localStorage.setItem("lab-theme", root.dataset.theme);
      });
    }
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

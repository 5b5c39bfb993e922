/* Delivery Lab: messages that travel. Each frame carries, in the hidden #travel list, the
   newest messages on the wire (a request, an answer, a lost one, a closed connection) and the
   notes inside one actor (an append, a timeout), with how many there were in all. After each
   frame this moves the ones it has not drawn yet from the sender's box to the receiver's (the
   elements marked data-actor), over the time the server gives for the play speed; a lost one
   stops half-way and fades under a cross. Too many at once, or "to the end": a count instead.
   With prefers-reduced-motion nothing moves: the message is shown where it goes, its sender and
   receiver highlighted. It also marks the sequence diagram's arrows that are new. Nothing here
   changes what the server sent; it only draws on top of it. */
(function () {
  "use strict";

  var MOVING = 6; // more new messages than this in one frame: a count, not a swarm
  var seenTotal = null; // messages drawn (or skipped) so far, null before the first frame
  var seenUpto = -1;
  var seenSeeking = false; // the last frame came from the middle of a seek
  var diagramSeen = null; // the newest diagram arrow already shown
  var diagramNewFrom = Infinity;
  var marks = []; // [actor name, class] for the boxes of the current messages
  var reduced = window.matchMedia ? window.matchMedia("(prefers-reduced-motion: reduce)") : null;

  function stillness() {
    return !!(reduced && reduced.matches);
  }

  function layer() {
    var room = document.getElementById("room");
    if (!room) return null;
    var el = document.getElementById("travel-layer");
    if (!el) {
      el = document.createElement("div");
      el.id = "travel-layer";
      el.className = "travel-layer";
      el.setAttribute("aria-hidden", "true");
      room.appendChild(el);
    }
    return el;
  }

  // The elements that stand for an actor, in page order: its own, then (for an instance such
  // as "billing#2" or a processor's "enricher.producer") those of the name before "#" or ".".
  function boxes(name) {
    if (!name) return [];
    var base = name.split(/[#.]/)[0];
    var selector = '[data-actor~="' + CSS.escape(name) + '"]';
    if (base && base !== name) selector += ', [data-actor~="' + CSS.escape(base) + '"]';
    return Array.prototype.filter.call(document.querySelectorAll(selector), function (el) {
      return el.getClientRects().length > 0;
    });
  }

  function box(name) {
    return boxes(name)[0] || null;
  }

  // Where a message leaves or reaches a box (the middle of its first line), or with ``above``
  // where a note about it goes (on its top edge), in the layer's frame.
  function anchor(el, origin, above) {
    var r = el.getBoundingClientRect();
    if (above) return { x: r.left + 4 - origin.left, y: r.top - origin.top };
    return { x: r.left + r.width / 2 - origin.left, y: r.top + Math.min(r.height / 2, 22) - origin.top };
  }

  // Where a lost message stops: half-way across the gap between the two boxes.
  function between(one, other, origin) {
    var r = one.getBoundingClientRect();
    var q = other.getBoundingClientRect();
    var facing = function (lo1, hi1, lo2, hi2) {
      if (hi1 <= lo2) return (hi1 + lo2) / 2;
      if (hi2 <= lo1) return (hi2 + lo1) / 2;
      return (Math.max(lo1, lo2) + Math.min(hi1, hi2)) / 2;
    };
    return {
      x: facing(r.left, r.right, q.left, q.right) - origin.left,
      y: facing(r.top, r.bottom, q.top, q.bottom) - origin.top,
    };
  }

  function at(point) {
    return "translate(" + Math.round(point.x) + "px, " + Math.round(point.y) + "px)";
  }

  function reapplyMarks() {
    marks.forEach(function (mark) {
      boxes(mark[0]).forEach(function (el) {
        el.classList.add(mark[1]);
      });
    });
  }

  function clearMarks() {
    document.querySelectorAll(".travel-sender, .travel-receiver, .travel-actor").forEach(function (el) {
      el.classList.remove("travel-sender", "travel-receiver", "travel-actor");
    });
    marks = [];
  }

  function mark(name, css) {
    marks.push([name, css]);
  }

  // The previous frame's messages go when new ones come, each once its own movement is over.
  function clearMessages(host) {
    Array.prototype.slice.call(host.children).forEach(function (el) {
      if (el.dataset.moving === "true") el.dataset.leaving = "true";
      else el.remove();
    });
  }

  function element(item) {
    var role = item.dataset.role;
    var msg = document.createElement("div");
    msg.className = "travel-msg is-" + role + (item.dataset.retry ? " is-retry" : "");
    msg.dataset.seq = item.dataset.seq;
    var label = document.createElement("span");
    label.className = "travel-label";
    label.textContent = item.textContent;
    if (item.dataset.retry) {
      var tag = document.createElement("span");
      tag.className = "travel-tag";
      tag.textContent = item.dataset.retry;
      label.appendChild(tag);
    }
    var dot = document.createElement("span");
    dot.className = "travel-dot";
    msg.appendChild(label);
    msg.appendChild(dot);
    if (role === "lost" || role === "closed") {
      var cross = document.createElement("span");
      cross.className = "travel-cross";
      cross.textContent = "\u2715";
      msg.appendChild(cross);
    }
    return msg;
  }

  function settle(msg, lost) {
    msg.dataset.moving = "false";
    if (lost) msg.classList.add("is-gone");
    else msg.classList.add("is-arrived");
    if (msg.dataset.leaving === "true") msg.remove();
  }

  function draw(item, host, origin, duration, delay) {
    var role = item.dataset.role;
    var from = box(item.dataset.src);
    var to = box(item.dataset.dst);
    var msg = element(item);
    var lost = role === "lost" || role === "closed";
    if (role === "note" || !from || !to || from === to) {
      var own = to || from;
      if (!own) return;
      mark(role === "note" ? item.dataset.src : item.dataset.dst, "travel-actor");
      msg.classList.add("is-static");
      msg.style.transform = at(anchor(own, origin, true));
      host.appendChild(msg);
      return;
    }
    mark(item.dataset.src, "travel-sender");
    mark(item.dataset.dst, "travel-receiver");
    var a = anchor(from, origin);
    var b = anchor(to, origin);
    var end = lost ? between(from, to, origin) : b;
    host.appendChild(msg);
    if (stillness() || !msg.animate || duration <= 0) {
      // No motion: the message is shown half-way, lost ones already under their cross.
      msg.classList.add("is-static");
      msg.style.transform = at(between(from, to, origin));
      if (lost) msg.classList.add("is-gone");
      return;
    }
    msg.style.transform = at(end);
    msg.dataset.moving = "true";
    msg.dataset.duration = String(Math.round(lost ? duration * 0.6 : duration));
    var movement = msg.animate([{ transform: at(a) }, { transform: at(end) }], {
      duration: parseInt(msg.dataset.duration, 10),
      delay: delay,
      easing: "ease-in-out",
      fill: "backwards",
    });
    movement.onfinish = function () { settle(msg, lost); };
    movement.oncancel = function () { settle(msg, lost); };
  }

  function count(host, origin, fresh) {
    var el = document.createElement("div");
    el.className = "travel-count";
    el.textContent = fresh + (fresh === 1 ? " message" : " messages") + " on the wire";
    var near = document.getElementById("brokers");
    var point = near && near.getClientRects().length ? anchor(near, origin, true) : { x: 80, y: 80 };
    el.style.transform = at(point);
    host.appendChild(el);
  }

  function onFrame() {
    var data = document.getElementById("travel");
    var host = layer();
    if (!data || !host) return;
    var total = parseInt(data.dataset.total, 10) || 0;
    var upto = parseInt(data.dataset.upto, 10);
    var seeking = data.dataset.seeking === "true";
    var wasSeeking = seenSeeking;
    seenSeeking = seeking;
    if (seenTotal === null || seeking || wasSeeking || total < seenTotal || upto < seenUpto) {
      // The first frame, back in time (another engine's count), or a jump through history
      // (a seek's frames, and the one that ends it, count what a replay went through, not
      // what went on the wire now): nothing to move, and what the later moment drew goes.
      seenTotal = total;
      seenUpto = upto;
      host.textContent = "";
      clearMarks();
      return;
    }
    var fresh = total - seenTotal;
    seenTotal = total;
    seenUpto = upto;
    if (fresh <= 0) {
      reapplyMarks(); // a frame that re-rendered a box drops its highlight: put it back
      return;
    }
    var items = Array.prototype.slice.call(data.querySelectorAll("li[data-seq]"));
    var duration = parseInt(data.dataset.duration, 10) || 0;
    clearMessages(host);
    clearMarks();
    var origin = host.getBoundingClientRect();
    if (fresh > MOVING || fresh > items.length || duration <= 0) {
      count(host, origin, fresh);
      return;
    }
    // Several in one frame leave one after another within the same time.
    var gap = fresh > 1 ? duration / (2 * fresh) : 0;
    items.slice(items.length - fresh).forEach(function (item, i) {
      draw(item, host, origin, duration - gap * (fresh - 1), gap * i);
    });
    reapplyMarks();
  }

  // The sequence diagram is drawn again whole: mark the arrows newer than the ones shown
  // before (.is-new) and let those not seen yet draw themselves in (.is-drawing).
  function onDiagram() {
    // Each arrow's line (a note's box) carries its event's seq; the mark goes on its group.
    var marked = Array.prototype.slice.call(
      document.querySelectorAll("#diagram line[data-seq], #diagram rect[data-seq]")
    );
    var newest = -1;
    marked.forEach(function (el) {
      newest = Math.max(newest, parseInt(el.dataset.seq, 10));
    });
    if (diagramSeen === null || newest < diagramSeen) {
      diagramSeen = newest;
      return;
    }
    if (newest > diagramSeen) diagramNewFrom = diagramSeen + 1;
    // A few new arrows draw themselves in; more at once (a fast speed, where the diagram is
    // sent every second or two) are only marked new: each drawing one is painted on its own
    // layer, and some forty of them made every paint for 0.6 s take 70 ms (bench_browser).
    var fresh = marked.filter(function (el) { return parseInt(el.dataset.seq, 10) > diagramSeen; });
    var drawing = fresh.length <= MOVING && !stillness();
    marked.forEach(function (el) {
      if (parseInt(el.dataset.seq, 10) >= diagramNewFrom) el.parentNode.classList.add("is-new");
    });
    if (drawing) {
      fresh.forEach(function (el) { el.parentNode.classList.add("is-drawing"); });
    }
    diagramSeen = newest;
  }

  document.addEventListener("htmx:wsAfterMessage", function () {
    onFrame();
    onDiagram();
  });
  document.addEventListener("DOMContentLoaded", function () {
    onFrame();
    onDiagram();
  });
})();

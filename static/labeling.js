/* The labeling page: text spans, image boxes, polygons and keypoints, hotkeys, and the Label Studio
   result built on submit; the page starts from the member's draft or annotation, or else from the
   prediction's suggestions, and saves a draft a couple of seconds after each change.
   The page itself is rendered on the server from the label config; this file only adds interaction.
   CSP-safe: no inline scripts, no inline style attributes (colors and positions go through CSSOM). */
(function () {
  "use strict";

  var form = document.getElementById("label-form");
  var dataEl = document.getElementById("label-data");
  if (!form || !dataEl) return;
  var DATA = JSON.parse(dataEl.textContent || "{}");
  var started = Date.now() - (DATA.lead_time || 0) * 1000; // a restored draft brings the time already spent
  var CSRF = form.elements._csrf_token ? form.elements._csrf_token.value : ""; // the layout's hx-headers token
  // {id, kind, control, to, labels, suggested?} and, by kind: span {start, end, text}, box {x, y, width, height},
  // poly {points: [[x, y], ...]}, point {x, y, width}; image positions are percent of the image.
  var regions = [];
  var selectedId = null;
  var pending = null; // {to, start, end}: the current text selection, as offsets
  var active = {}; // control name -> active label value

  function rid() {
    var bytes = new Uint8Array(6);
    (window.crypto || window.msCrypto).getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return (b % 36).toString(36); }).join("") +
      Math.random().toString(36).slice(2, 6);
  }
  function all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function clamp(v, lo, hi) { return Math.min(hi, Math.max(lo, v)); }
  function controlsFor(object, type) {
    return all('.lbl-control[data-type="' + type + '"]').filter(function (c) { return c.dataset.to === object; });
  }
  function controlEl(name) { return document.querySelector('.lbl-control[data-control="' + CSS.escape(name) + '"]'); }
  function colorOf(controlName, label) {
    var ctl = controlEl(controlName);
    var btn = ctl && all(".lbl-label", ctl).filter(function (b) { return b.dataset.label === label; })[0];
    return btn ? btn.dataset.color : "#6366f1";
  }
  function hexToRgba(color, alpha) {
    var m = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(color || "");
    if (!m) return color;
    var h = m[1].length === 3 ? m[1].replace(/./g, "$&$&") : m[1];
    var n = parseInt(h, 16);
    return "rgba(" + (n >> 16 & 255) + "," + (n >> 8 & 255) + "," + (n & 255) + "," + alpha + ")";
  }

  // --- colors of label buttons ---------------------------------------------------------------------
  all(".lbl-label[data-color]").forEach(function (b) {
    b.style.setProperty("--c", b.dataset.color);
    b.style.setProperty("--c-soft", hexToRgba(b.dataset.color, 0.14));
  });

  // --- text: exact text from JSON (HTML parsing would normalise line breaks), spans as segments ----
  function textBody(name) { return document.querySelector('[data-text-for="' + CSS.escape(name) + '"]'); }

  function offsetIn(body, node, offset) {
    var range = document.createRange();
    range.setStart(body, 0);
    range.setEnd(node, offset);
    return range.toString().length;
  }

  function renderText(name) {
    var body = textBody(name);
    var text = DATA.texts && DATA.texts[name];
    if (!body || typeof text !== "string") return;
    var spans = regions.filter(function (r) { return r.kind === "span" && r.to === name; });
    var cuts = [0, text.length];
    spans.forEach(function (r) { cuts.push(r.start, r.end); });
    cuts = cuts.filter(function (v, i, a) { return a.indexOf(v) === i; }).sort(function (a, b) { return a - b; });
    body.textContent = "";
    for (var i = 0; i + 1 < cuts.length; i++) {
      var a = cuts[i], b = cuts[i + 1];
      var piece = text.slice(a, b);
      var covering = spans.filter(function (r) { return r.start <= a && r.end >= b; });
      if (!covering.length) { body.appendChild(document.createTextNode(piece)); continue; }
      var top = covering[covering.length - 1];
      var el = document.createElement("span");
      el.className = "lbl-hl" + (covering.length > 1 ? " lbl-hl-multi" : "") + (top.suggested ? " is-suggested" : "") +
        (covering.some(function (r) { return r.id === selectedId; }) ? " is-selected" : "");
      el.dataset.region = top.id;
      var color = colorOf(top.control, top.labels[0]);
      el.style.setProperty("--c", color);
      el.style.setProperty("--c-soft", hexToRgba(color, covering.length > 1 ? 0.42 : 0.24));
      var ending = covering.filter(function (r) { return r.end === b; });
      if (ending.length) {
        el.classList.add("lbl-hl-end");
        el.dataset.tag = ending.map(function (r) { return r.labels.join(", "); }).join(" · ");
      }
      el.textContent = piece;
      body.appendChild(el);
    }
  }

  function trackSelection() {
    var sel = window.getSelection();
    pending = null;
    if (!sel || !sel.rangeCount || sel.isCollapsed) return;
    var range = sel.getRangeAt(0);
    all("[data-text-for]").forEach(function (body) {
      if (!body.contains(range.startContainer) || !body.contains(range.endContainer)) return;
      var start = offsetIn(body, range.startContainer, range.startOffset);
      var end = offsetIn(body, range.endContainer, range.endOffset);
      if (end > start) pending = { to: body.dataset.textFor, start: start, end: end };
    });
  }

  function addSpan(controlName, label) {
    if (!pending) return false;
    var text = DATA.texts[pending.to];
    var r = { id: rid(), kind: "span", control: controlName, to: pending.to, labels: [label],
      start: pending.start, end: pending.end, text: text.slice(pending.start, pending.end) };
    regions.push(r);
    pending = null;
    window.getSelection().removeAllRanges();
    select(r.id);
    return true;
  }

  document.addEventListener("selectionchange", trackSelection);
  all("[data-text-for]").forEach(function (body) {
    var name = body.dataset.textFor;
    renderText(name);
    if (controlsFor(name, "labels").length) body.classList.add("is-selectable");
    body.addEventListener("mouseup", function () {
      trackSelection();
      if (!pending) return;
      var ctl = controlsFor(pending.to, "labels").filter(function (c) { return active[c.dataset.control]; })[0];
      if (ctl) addSpan(ctl.dataset.control, active[ctl.dataset.control]);
    });
    body.addEventListener("click", function (e) {
      var hl = e.target.closest && e.target.closest(".lbl-hl");
      if (hl && window.getSelection().isCollapsed) select(hl.dataset.region);
    });
  });

  // --- label buttons ---------------------------------------------------------------------------------
  // Image controls: RectangleLabels draws boxes, PolygonLabels polygons, KeyPointLabels points.
  var SHAPES = { rectanglelabels: "box", polygonlabels: "poly", keypointlabels: "point" };

  function find(id) { return regions.filter(function (r) { return r.id === id; })[0]; }
  function showActive(ctl) {
    all(".lbl-label", ctl).forEach(function (b) {
      b.setAttribute("aria-pressed", String(active[ctl.dataset.control] === b.dataset.label));
    });
  }

  all(".lbl-label").forEach(function (btn) {
    btn.addEventListener("mousedown", function (e) { e.preventDefault(); }); // keep the text selection
    btn.addEventListener("click", function () {
      var ctl = btn.closest(".lbl-control");
      var name = ctl.dataset.control, label = btn.dataset.label, type = ctl.dataset.type;
      if (type === "labels" && pending && pending.to === ctl.dataset.to && addSpan(name, label)) return;
      var sel = find(selectedId);
      if (SHAPES[type] && sel && sel.control === name) { // relabel the selected shape
        sel.labels = [label];
        sel.suggested = false;
        render();
        return;
      }
      active[name] = active[name] === label ? null : label;
      showActive(ctl);
      if (SHAPES[type] && active[name]) { // one drawing tool per image: the other image controls step back
        all(".lbl-control").forEach(function (other) {
          if (other === ctl || other.dataset.to !== ctl.dataset.to || !SHAPES[other.dataset.type]) return;
          active[other.dataset.control] = null;
          showActive(other);
        });
      }
    });
  });

  // --- image regions: boxes, polygons, keypoints (positions in percent of the image) -----------------
  var SVG = "http://www.w3.org/2000/svg";
  var POINT_SIZE = 0.6; // a keypoint's value.width: its size in percent of the image width
  var drawing = null; // the polygon being drawn: {region, cursor: [x, y] | null}

  function stageFor(name) { return document.querySelector('[data-stage-for="' + CSS.escape(name) + '"]'); }

  function paint(el, r, alpha) {
    var color = r.labels.length ? colorOf(r.control, r.labels[0]) : "#667085";
    el.style.setProperty("--c", color);
    el.style.setProperty("--c-soft", hexToRgba(color, alpha));
  }
  function place(el, x, y) { el.style.left = x + "%"; el.style.top = y + "%"; }
  function classes(base, r) {
    return base + (r.id === selectedId ? " is-selected" : "") + (r.labels.length ? "" : " is-unlabeled") +
      (r.suggested ? " is-suggested" : "");
  }
  function tag(className, r) {
    var el = document.createElement("span");
    el.className = className;
    el.textContent = r.labels.length ? r.labels.join(", ") : "No label";
    return el;
  }

  function boxEl(r) {
    var box = document.createElement("div");
    box.className = classes("lbl-box", r);
    box.dataset.region = r.id;
    place(box, r.x, r.y);
    box.style.width = r.width + "%";
    box.style.height = r.height + "%";
    paint(box, r, 0.16);
    box.appendChild(tag("lbl-box-tag", r));
    var handle = document.createElement("span");
    handle.className = "lbl-handle";
    handle.dataset.handle = "se";
    box.appendChild(handle);
    return box;
  }

  function pointEl(r) {
    var el = document.createElement("span");
    el.className = classes("lbl-point", r);
    el.dataset.region = r.id;
    place(el, r.x, r.y);
    paint(el, r, 0.3);
    el.appendChild(tag("lbl-shape-tag", r));
    return el;
  }

  function drawPolygon(svg, overlay, r) {
    var open = drawing !== null && drawing.region === r;
    var points = open && drawing.cursor ? r.points.concat([drawing.cursor]) : r.points;
    var shape = document.createElementNS(SVG, open ? "polyline" : "polygon");
    shape.setAttribute("points", points.map(function (p) { return p[0] + "," + p[1]; }).join(" "));
    shape.setAttribute("class", classes("lbl-poly", r) + (open ? " is-open" : ""));
    shape.dataset.region = r.id;
    paint(shape, r, 0.2);
    svg.appendChild(shape);
    r.points.forEach(function (p, i) { // vertices are HTML, so they stay round on a stretched image
      var v = document.createElement("span");
      v.className = "lbl-vertex" + (r.id === selectedId ? " is-selected" : "") + (open && i === 0 ? " is-first" : "");
      v.dataset.region = r.id;
      v.dataset.vertex = String(i);
      place(v, p[0], p[1]);
      paint(v, r, 0.2);
      overlay.appendChild(v);
    });
    if (open) return;
    var top = r.points.reduce(function (a, p) { return p[1] < a[1] ? p : a; });
    var label = tag("lbl-shape-tag lbl-poly-tag", r);
    place(label, top[0], top[1]);
    paint(label, r, 0.2);
    overlay.appendChild(label);
  }

  function renderShapes(name) {
    var stage = stageFor(name);
    if (!stage) return;
    var overlay = stage.querySelector(".lbl-overlay");
    overlay.textContent = "";
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "lbl-shapes");
    svg.setAttribute("viewBox", "0 0 100 100");
    svg.setAttribute("preserveAspectRatio", "none");
    overlay.appendChild(svg);
    regions.filter(function (r) { return r.to === name && r.kind !== "span"; }).forEach(function (r) {
      if (r.kind === "box") overlay.appendChild(boxEl(r));
      else if (r.kind === "point") overlay.appendChild(pointEl(r));
      else drawPolygon(svg, overlay, r);
    });
  }

  function closePolygon() {
    var r = drawing.region;
    drawing = null;
    select(r.id);
  }

  all("[data-stage-for]").forEach(function (stage) {
    var name = stage.dataset.stageFor;
    var overlay = stage.querySelector(".lbl-overlay");
    var ctls = all(".lbl-control").filter(function (c) { return c.dataset.to === name && SHAPES[c.dataset.type]; });
    if (!ctls.length) { overlay.classList.add("is-passive"); return; }
    stage.classList.add("is-drawable");
    var drag = null;

    function point(e) {
      var rect = overlay.getBoundingClientRect();
      return { x: clamp((e.clientX - rect.left) / rect.width * 100, 0, 100),
        y: clamp((e.clientY - rect.top) / rect.height * 100, 0, 100) };
    }
    function tool() { // the control whose label is picked, else the first one of this image
      var ctl = ctls.filter(function (c) { return active[c.dataset.control]; })[0] || ctls[0];
      var label = active[ctl.dataset.control];
      return { control: ctl.dataset.control, kind: SHAPES[ctl.dataset.type], labels: label ? [label] : [] };
    }

    overlay.addEventListener("pointerdown", function (e) {
      if (e.button !== 0) return;
      e.preventDefault();
      var p = point(e), t = tool();
      var hit = e.target.closest("[data-region]");
      var r = hit ? find(hit.dataset.region) : null;
      var vertex = hit && hit.dataset.vertex !== undefined ? Number(hit.dataset.vertex) : null;
      if (drawing) { // each click adds a point; the first point (or Enter) closes the polygon
        if (drawing.region.to !== name) return; // it is being drawn on another image
        if (r !== drawing.region || vertex === null) {
          drawing.region.points.push([p.x, p.y]);
          render();
        } else if (vertex === 0 && drawing.region.points.length >= 3) closePolygon();
        return;
      }
      // A picked keypoint label places points on boxes and polygons too (an eye inside a face).
      var onBody = r && r.kind !== "point" && vertex === null && !e.target.dataset.handle;
      if (r && !(onBody && t.kind === "point" && t.labels.length)) {
        select(r.id);
        if (vertex !== null) drag = { mode: "vertex", r: r, i: vertex };
        else if (r.kind === "poly") drag = { mode: "move", r: r, p: p, orig: r.points.map(function (q) { return q.slice(); }) };
        else drag = { mode: e.target.dataset.handle ? "resize" : "move", r: r, p: p,
          orig: { x: r.x, y: r.y, width: r.width, height: r.height } };
      } else {
        var nr = { id: rid(), kind: t.kind, control: t.control, to: name, labels: t.labels };
        if (t.kind === "box") {
          Object.assign(nr, { x: p.x, y: p.y, width: 0, height: 0 });
          drag = { mode: "draw", r: nr, p: p };
        } else if (t.kind === "point") {
          Object.assign(nr, { x: p.x, y: p.y, width: POINT_SIZE });
          drag = { mode: "move", r: nr, p: p, orig: { x: p.x, y: p.y } };
        } else {
          nr.points = [[p.x, p.y]];
          drawing = { region: nr, cursor: null };
        }
        regions.push(nr);
        select(nr.id);
      }
      if (drag) overlay.setPointerCapture(e.pointerId);
    });

    overlay.addEventListener("pointermove", function (e) {
      var p = point(e);
      if (!drag) { // the edge from the last point follows the pointer
        if (drawing && drawing.region.to === name) { drawing.cursor = [p.x, p.y]; renderShapes(name); }
        return;
      }
      var r = drag.r, o = drag.orig, dx = p.x - (drag.p || p).x, dy = p.y - (drag.p || p).y;
      drag.moved = true;
      if (drag.mode === "draw") {
        r.x = Math.min(p.x, drag.p.x); r.y = Math.min(p.y, drag.p.y);
        r.width = Math.abs(p.x - drag.p.x); r.height = Math.abs(p.y - drag.p.y);
      } else if (drag.mode === "vertex") {
        r.points[drag.i] = [p.x, p.y];
      } else if (drag.mode === "resize") {
        r.width = clamp(o.width + dx, 0.5, 100 - o.x);
        r.height = clamp(o.height + dy, 0.5, 100 - o.y);
      } else if (r.kind === "box") {
        r.x = clamp(o.x + dx, 0, 100 - o.width);
        r.y = clamp(o.y + dy, 0, 100 - o.height);
      } else if (r.kind === "point") {
        r.x = clamp(o.x + dx, 0, 100);
        r.y = clamp(o.y + dy, 0, 100);
      } else { // a polygon moves as a whole and stays on the image
        var xs = o.map(function (q) { return q[0]; }), ys = o.map(function (q) { return q[1]; });
        dx = clamp(dx, -Math.min.apply(null, xs), 100 - Math.max.apply(null, xs));
        dy = clamp(dy, -Math.min.apply(null, ys), 100 - Math.max.apply(null, ys));
        r.points = o.map(function (q) { return [q[0] + dx, q[1] + dy]; });
      }
      renderShapes(name);
    });

    function finish(e) {
      if (!drag) return;
      if (drag.mode === "draw" && (drag.r.width < 0.5 || drag.r.height < 0.5)) {
        regions = regions.filter(function (x) { return x !== drag.r; });
        selectedId = null;
      }
      if (drag.moved) drag.r.suggested = false;
      drag = null;
      if (overlay.hasPointerCapture && overlay.hasPointerCapture(e.pointerId)) overlay.releasePointerCapture(e.pointerId);
      render();
    }
    overlay.addEventListener("pointerup", finish);
    overlay.addEventListener("pointercancel", finish);
  });

  // --- the starting point: my draft or annotation (DATA.restore), else the prediction's suggestions --
  var controlIds = {}; // control name -> the region id of its value (kept, so an update keeps its ids)

  function setControl(ctl, v) { // choices, rating, number, textarea; v null clears it
    var type = ctl.dataset.type;
    all("input", ctl).forEach(function (i) {
      if (type === "choices") i.checked = !!v && v.choices.indexOf(i.value) >= 0;
      else if (type === "rating") i.checked = !!v && Number(i.value) === v.rating;
      else if (type === "number") i.value = v ? String(v.number) : "";
    });
    var ta = ctl.querySelector("textarea");
    if (ta) ta.value = v ? v.text.join("\n") : "";
  }

  function load(result, suggested) {
    result.forEach(function (s) {
      var v = s.value, ctl = controlEl(s.from_name), r = { id: s.id, control: s.from_name, to: s.to_name, suggested: suggested };
      if (!ctl) return;
      if (s.type === "labels") {
        if (!textBody(r.to)) return; // the text is not shown as selectable text
        Object.assign(r, { kind: "span", start: v.start, end: v.end, text: v.text, labels: v.labels });
      } else if (SHAPES[s.type]) {
        if (!stageFor(r.to)) return; // the image is not shown, so the region could not be edited
        if (s.type === "rectanglelabels") {
          Object.assign(r, { kind: "box", x: v.x, y: v.y, width: v.width, height: v.height, rotation: v.rotation,
            labels: v.rectanglelabels });
        } else if (s.type === "polygonlabels") {
          Object.assign(r, { kind: "poly", points: v.points.map(function (q) { return [q[0], q[1]]; }), labels: v.polygonlabels });
        } else {
          Object.assign(r, { kind: "point", x: v.x, y: v.y, width: v.width, labels: v.keypointlabels });
        }
      } else {
        setControl(ctl, v);
        controlIds[s.from_name] = s.id;
        if (suggested) ctl.classList.add("is-suggested");
        return;
      }
      regions.push(r);
    });
  }

  if (DATA.restore) { // my own work: exactly what I saved, so the config's defaults step back
    all(".lbl-control").forEach(function (ctl) { if (!/labels$/.test(ctl.dataset.type)) setControl(ctl, null); });
    load(DATA.restore, false);
  } else {
    load(DATA.suggestions || [], true);
  }

  // --- the region list -------------------------------------------------------------------------------
  function select(id) {
    selectedId = id;
    render();
  }

  function removeRegion(id) {
    if (drawing && drawing.region.id === id) drawing = null;
    regions = regions.filter(function (r) { return r.id !== id; });
    if (selectedId === id) selectedId = null;
    render();
  }

  function describe(r) {
    var at = Math.round(r.x) + ", " + Math.round(r.y);
    if (r.kind === "span") return "“" + (r.text.length > 60 ? r.text.slice(0, 57) + "…" : r.text) + "”";
    if (r.kind === "poly") return r.points.length + " points" + (drawing && drawing.region === r ? ", not closed" : "");
    if (r.kind === "point") return "point at " + at;
    return Math.round(r.width) + " × " + Math.round(r.height) + " % at " + at;
  }

  function renderList() {
    var list = document.getElementById("lbl-regions");
    if (!list) return;
    list.textContent = "";
    regions.forEach(function (r, i) {
      var li = document.createElement("li");
      li.className = "lbl-region" + (r.id === selectedId ? " is-selected" : "");
      li.dataset.region = r.id;
      var color = r.labels.length ? colorOf(r.control, r.labels[0]) : "#667085";
      li.style.setProperty("--c", color);
      var main = document.createElement("button");
      main.type = "button";
      main.className = "lbl-region-main";
      var tag = document.createElement("span");
      tag.className = "lbl-region-label";
      tag.textContent = r.labels.length ? r.labels.join(", ") : "No label";
      var what = document.createElement("span");
      what.className = "lbl-region-what";
      what.textContent = describe(r);
      main.appendChild(tag);
      main.appendChild(what);
      if (r.suggested) {
        var badge = document.createElement("span");
        badge.className = "lbl-region-badge";
        badge.textContent = "suggested";
        main.appendChild(badge);
      }
      main.addEventListener("click", function () { select(r.id); });
      var del = document.createElement("button");
      del.type = "button";
      del.className = "lbl-region-delete";
      del.setAttribute("aria-label", "Delete region " + (i + 1));
      del.dataset.testid = "delete-region";
      del.textContent = "×";
      del.addEventListener("click", function () { removeRegion(r.id); });
      li.appendChild(main);
      li.appendChild(del);
      list.appendChild(li);
    });
    var count = document.getElementById("lbl-region-count");
    if (count) count.textContent = String(regions.length);
    var hint = document.getElementById("lbl-regions-empty");
    if (hint) hint.hidden = regions.length > 0;
  }

  function render() {
    Object.keys(DATA.texts || {}).forEach(renderText);
    all("[data-stage-for]").forEach(function (s) { renderShapes(s.dataset.stageFor); });
    renderList();
    changed();
  }

  // --- hotkeys ---------------------------------------------------------------------------------------
  document.addEventListener("keydown", function (e) {
    var t = e.target;
    var typing = t && (t.tagName === "TEXTAREA" || t.isContentEditable ||
      (t.tagName === "INPUT" && !/^(radio|checkbox|button|submit)$/.test(t.type)));
    if ((e.ctrlKey || e.metaKey) && e.key === "Enter") { e.preventDefault(); form.requestSubmit(primary); return; }
    if (e.ctrlKey && e.key === " " && skipButton && !typing) { e.preventDefault(); form.requestSubmit(skipButton); return; }
    if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
    if (drawing && e.key === "Enter") {
      e.preventDefault();
      if (drawing.region.points.length >= 3) closePolygon();
      return;
    }
    if ((e.key === "Delete" || e.key === "Backspace") && selectedId) { e.preventDefault(); removeRegion(selectedId); return; }
    if (e.key === "Escape") {
      if (drawing) removeRegion(drawing.region.id); // give up the polygon being drawn
      selectedId = null;
      render();
      return;
    }
    if (e.key.length !== 1) return;
    var key = e.key.toLowerCase();
    var target = all("[data-hotkey]").filter(function (el) { return el.dataset.hotkey.toLowerCase() === key; })[0];
    if (target) { e.preventDefault(); target.click(); }
  });

  // --- the result, in Label Studio's format ----------------------------------------------------------
  function buildResult() {
    var result = [], problems = [];
    all(".lbl-control").forEach(function (ctl) {
      var base = { from_name: ctl.dataset.control, to_name: ctl.dataset.to, type: ctl.dataset.type };
      var value = null;
      if (ctl.dataset.type === "choices") {
        var checked = all("input:checked", ctl).map(function (i) { return i.value; });
        if (checked.length) value = { choices: checked };
      } else if (ctl.dataset.type === "textarea") {
        var ta = ctl.querySelector("textarea");
        if (ta && ta.value.trim()) value = { text: [ta.value] };
      } else if (ctl.dataset.type === "rating") {
        var star = ctl.querySelector("input:checked");
        if (star) value = { rating: parseInt(star.value, 10) };
      } else if (ctl.dataset.type === "number") {
        var num = ctl.querySelector("input");
        if (num && num.value !== "") value = { number: Number(num.value) };
      }
      var id = controlIds[base.from_name] || (controlIds[base.from_name] = rid());
      if (value) result.push(Object.assign({ id: id }, base, { value: value }));
      else if (ctl.dataset.required && !/labels$/.test(ctl.dataset.type)) {
        problems.push("“" + (ctl.querySelector("legend") || {}).textContent.replace("*", "").trim() + "” is required.");
      }
    });
    regions.forEach(function (r, i) {
      var ctl = controlEl(r.control);
      var base = { id: r.id, from_name: r.control, to_name: r.to, type: ctl.dataset.type };
      if (r.kind === "span") {
        result.push(Object.assign(base, { value: { start: r.start, end: r.end, text: r.text, labels: r.labels } }));
        return;
      }
      var what = { box: "Box", poly: "Polygon", point: "Keypoint" }[r.kind] + " " + (i + 1);
      if (drawing && drawing.region === r) {
        problems.push(what + " is not closed: click its first point or press Enter.");
        return;
      }
      if (!r.labels.length) { problems.push(what + " has no label: select it and pick a label."); return; }
      var value = r.kind === "box"
        ? { x: r.x, y: r.y, width: r.width, height: r.height, rotation: r.rotation || 0, rectanglelabels: r.labels }
        : r.kind === "poly"
          ? { points: r.points.map(function (p) { return [p[0], p[1]]; }), polygonlabels: r.labels, closed: true }
          : { x: r.x, y: r.y, width: r.width, keypointlabels: r.labels };
      var img = stageFor(r.to).querySelector("img");
      result.push(Object.assign(base, {
        original_width: img.naturalWidth, original_height: img.naturalHeight, image_rotation: 0, value: value
      }));
    });
    return { result: result, problems: problems };
  }

  function showError(message) {
    var box = document.getElementById("label-errors");
    box.textContent = "";
    var div = document.createElement("div");
    div.className = "flash flash-error";
    div.setAttribute("role", "alert");
    div.dataset.testid = "label-error";
    div.textContent = message;
    box.appendChild(div);
  }

  function post(url, fields, json) { // the page's htmx CSRF token goes in the header, like hx-headers
    var body = new URLSearchParams();
    Object.keys(fields).forEach(function (k) { body.append(k, fields[k]); });
    return fetch(url, { method: "POST", body: body, credentials: "same-origin",
      headers: { "X-CSRFToken": CSRF, "HX-Request": "true", "Accept": json ? "application/json" : "text/html" } });
  }
  function elapsed() { return ((Date.now() - started) / 1000).toFixed(3); }

  // --- drafts: saved a couple of seconds after the last change ---------------------------------------
  var DRAFT_DELAY = 2000;
  var statusEl = document.getElementById("lbl-status");
  var draftTimer = null, draftSaving = null, finished = false;

  function clock(iso) {
    return (iso ? new Date(iso) : new Date()).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  }
  function showStatus(text, state) {
    if (!statusEl) return;
    statusEl.textContent = statusEl.title = text;
    statusEl.className = "lbl-status" + (state ? " is-" + state : "");
  }
  function snapshot() { // what a draft stores, less the image sizes (known only once the image loaded)
    return JSON.stringify(buildResult().result.map(function (r) { return [r.id, r.from_name, r.value]; }));
  }
  var savedSnapshot = snapshot();

  function changed() {
    if (finished) return;
    clearTimeout(draftTimer);
    draftTimer = setTimeout(saveDraft, DRAFT_DELAY);
  }

  function saveDraft() {
    draftTimer = null;
    if (draftSaving) { changed(); return; } // one save at a time, the newest last
    var snap = snapshot();
    if (finished || snap === savedSnapshot || !form.dataset.draftUrl) return; // no drafts while fixing a review
    var fields = { task: DATA.task, result: JSON.stringify(buildResult().result), lead_time: elapsed() };
    draftSaving = post(form.dataset.draftUrl, fields, true)
      .then(function (res) {
        return res.json().catch(function () { return {}; }).then(function (answer) {
          if (res.ok) {
            savedSnapshot = snap;
            showStatus("Draft saved " + clock(answer.saved_at), "draft");
          } else {
            showStatus("Draft not saved: " + (answer.detail || "error " + res.status), "error");
          }
        });
      })
      .catch(function () { showStatus("Draft not saved: the server could not be reached.", "error"); })
      .then(function () { draftSaving = null; });
  }

  form.addEventListener("input", function (e) {
    var ctl = e.target.closest && e.target.closest(".lbl-control");
    if (ctl) ctl.classList.remove("is-suggested");
    changed();
  });
  if (DATA.state === "draft") showStatus("Draft restored (saved " + clock(DATA.at) + ")", "draft");
  else if (DATA.state === "submitted") showStatus("Submitted " + clock(DATA.at), "submitted");
  else if (DATA.state === "skipped") showStatus("Skipped " + clock(DATA.at), "skipped");

  // --- submit, submit and next, update, skip ---------------------------------------------------------
  var primary = form.querySelector("[data-primary]");
  var skipButton = form.querySelector('[data-action="skip"]');
  var busy = false;
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    if (busy) return;
    var button = e.submitter || primary;
    var fields = { task: DATA.task, lead_time: elapsed() };
    if (form.elements.version) fields.version = form.elements.version.value; // the version this page loaded
    if (button.dataset.action !== "skip") {
      var built = buildResult();
      if (built.problems.length) { showError(built.problems.join(" ")); return; }
      if (!built.result.length) { showError("The annotation is empty: label something before submitting."); return; }
      fields.result = JSON.stringify(built.result);
      fields.then = button.value || "next";
    }
    var buttons = all("button[type=submit]", form);
    busy = finished = true;
    clearTimeout(draftTimer);
    buttons.forEach(function (b) { b.disabled = true; });
    (draftSaving || Promise.resolve()) // a draft on its way lands first, then the submit replaces it
      .then(function () { return post(button.getAttribute("formaction") || form.action, fields, false); })
      .then(function (res) {
        var to = res.headers.get("HX-Redirect");
        if (to) { window.location.assign(to); return true; }
        return res.text().then(function (html) {
          if (res.status === 422 || res.status === 409) {
            document.getElementById("label-errors").innerHTML = html; // a server-rendered, escaped fragment
          } else {
            showError("The annotation could not be saved (" + res.status + "). Reload the page and try again.");
          }
        });
      })
      .catch(function () { showError("The server could not be reached. Check the connection and submit again."); })
      .then(function (leaving) {
        if (leaving) return;
        busy = finished = false;
        buttons.forEach(function (b) { b.disabled = false; });
      });
  });

  render();
})();

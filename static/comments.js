/* Comments panel: Ctrl+Enter sends the comment being written (not the labeling form), and "@"
   opens a list of members to mention (from the panel's mentions URL). No inline scripts (CSP). */
(function () {
  "use strict";
  var MENTION = /(^|[^\w.@+-])@([\w.+-]*)$/;
  var box = null, field = null, timer = null, lastQuery = null, scrolled = false;

  function close() {
    if (box) box.remove();
    box = null; lastQuery = null;
  }

  function items() { return box ? Array.prototype.slice.call(box.querySelectorAll("li[data-token]")) : []; }

  function pick(li) {
    var ta = field, caret = ta.selectionStart, before = ta.value.slice(0, caret);
    var m = before.match(MENTION);
    if (!m) { close(); return; }
    var start = caret - m[2].length - 1;
    var insert = "@" + li.dataset.token + " ";
    ta.value = ta.value.slice(0, start) + insert + ta.value.slice(caret);
    ta.selectionStart = ta.selectionEnd = start + insert.length;
    close();
    ta.focus();
  }

  function show(ta, html) {
    close();
    if (!html.trim()) return;
    box = document.createElement("div");
    box.className = "cm-suggest";
    box.innerHTML = html; // server-rendered, escaped by the template engine
    if (!box.querySelector("li[data-token]")) { box = null; return; }
    ta.insertAdjacentElement("afterend", box);
    box.addEventListener("mousedown", function (e) {
      var li = e.target.closest("li[data-token]");
      if (li) { e.preventDefault(); pick(li); }
    });
  }

  function lookup(ta) {
    var m = ta.value.slice(0, ta.selectionStart).match(MENTION);
    if (!m) { close(); return; }
    var q = m[2];
    if (q === lastQuery && box) return;
    lastQuery = q;
    clearTimeout(timer);
    timer = setTimeout(function () {
      var url = ta.dataset.mentionUrl + "?q=" + encodeURIComponent(q);
      fetch(url, { headers: { "HX-Request": "true" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : ""; })
        .then(function (html) { if (field === ta) show(ta, html); })
        .catch(function () { close(); });
    }, 120);
  }

  document.addEventListener("input", function (e) {
    var ta = e.target;
    if (!(ta instanceof HTMLTextAreaElement) || !ta.dataset.mentionUrl) return;
    field = ta;
    lookup(ta);
  });

  document.addEventListener("keydown", function (e) {
    var ta = e.target;
    if (!(ta instanceof HTMLTextAreaElement) || !ta.closest("#comments")) return;
    if ((e.ctrlKey || e.metaKey) && e.key === "Enter") {
      // Send this comment; keep the labeling page's Ctrl+Enter (submit the annotation) away from it.
      e.preventDefault();
      e.stopImmediatePropagation();
      close();
      if (ta.form) ta.form.requestSubmit();
      return;
    }
    var list = items();
    if (!list.length) return;
    var i = list.findIndex(function (li) { return li.getAttribute("aria-selected") === "true"; });
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      if (i >= 0) list[i].removeAttribute("aria-selected");
      i = e.key === "ArrowDown" ? (i + 1) % list.length : (i - 1 + list.length) % list.length;
      list[i].setAttribute("aria-selected", "true");
    } else if (e.key === "Enter" || e.key === "Tab") {
      e.preventDefault();
      e.stopImmediatePropagation();
      pick(list[Math.max(i, 0)]);
    } else if (e.key === "Escape") {
      e.preventDefault();
      close();
    }
  }, true);

  document.addEventListener("focusout", function (e) {
    if (e.target === field) setTimeout(close, 150);
  });
  document.addEventListener("htmx:afterSwap", close);

  // A notification opens the task at "#comment-<id>": the panel arrives after the page, so scroll then.
  document.addEventListener("htmx:load", function (e) {
    var panel = e.target;
    if (!(panel instanceof HTMLElement) || panel.id !== "comments") return;
    var hash = window.location.hash;
    if (!/^#comment-\d+$/.test(hash) || scrolled) return;
    var target = document.getElementById(hash.slice(1));
    if (!target) return;
    document.querySelectorAll(".cm-comment.is-target").forEach(function (el) { el.classList.remove("is-target"); });
    target.classList.add("is-target");
    scrolled = true;
    target.scrollIntoView({ block: "center" });
  });
})();

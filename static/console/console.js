/* Baton console: live socket bookkeeping, clocks, keyboard, notifications. No framework. */
(function () {
  "use strict";
  const body = document.body;
  const page = body.dataset.page || "";
  let socket = null;

  // --- live socket -------------------------------------------------------------------
  function shownVersion() {
    const actions = document.getElementById("case-actions");
    return actions ? Number(actions.dataset.version) : null;
  }
  function watchMessage() {
    return JSON.stringify({
      action: "watch",
      inbox: page === "inbox" ? (body.dataset.inboxQuery || "") : null,
      case: page === "case" ? Number(body.dataset.case) : null,
      board: page === "board",  // supervisors: the board re-rendered on every case change
      // The decision panel's version: unchanged, the server leaves it (and what the
      // reviewer is typing there) alone on a reconnect.
      version: shownVersion(),
    });
  }
  function setLive(text, ok) {
    const el = document.getElementById("live-state");
    if (el) { el.textContent = text; el.classList.toggle("ok", ok); }
  }
  document.addEventListener("htmx:wsOpen", function (evt) {
    socket = evt.detail.socketWrapper;
    socket.send(watchMessage());  // on every (re)connect: the server re-renders what we show
    setLive("live", true);
  });
  document.addEventListener("htmx:wsClose", function () { setLive("reconnecting…", false); });
  setInterval(function () { if (socket) socket.send(JSON.stringify({ action: "ping" })); }, 30000);

  // A form that fails validation (422) or meets a conflict (409) answers with itself and
  // its errors: show them, as a page without JavaScript would.
  document.addEventListener("htmx:beforeSwap", function (evt) {
    const status = evt.detail.xhr.status;
    if (status === 409 || status === 422) { evt.detail.shouldSwap = true; evt.detail.isError = false; }
  });

  // --- clocks --------------------------------------------------------------------------
  function fmt(seconds) {
    const s = Math.abs(Math.round(seconds));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return (h ? h + "h " : "") + (h || m ? m + "m " : "") + (h ? "" : r + "s");
  }
  function tick() {
    const now = Date.now();
    document.querySelectorAll("time.sla[data-due]").forEach(function (el) {
      const left = (Date.parse(el.dataset.due) - now) / 1000;
      el.textContent = left >= 0 ? fmt(left) : "breached " + fmt(left) + " ago";
      el.classList.toggle("breached", left < 0);
      el.classList.toggle("warning", left >= 0 && left < 300);
    });
    document.querySelectorAll("time.since[data-since]").forEach(function (el) {
      el.textContent = fmt((now - Date.parse(el.dataset.since)) / 1000);
    });
  }
  setInterval(tick, 1000);
  document.addEventListener("DOMContentLoaded", tick);
  document.addEventListener("htmx:oobAfterSwap", tick);

  // --- toasts ----------------------------------------------------------------------------
  document.addEventListener("htmx:oobAfterSwap", function () {
    document.querySelectorAll("#toasts [data-autohide]:not([data-timer])").forEach(function (el) {
      el.dataset.timer = "1";
      setTimeout(function () { el.remove(); }, el.classList.contains("toast-error") ? 12000 : 6000);
    });
  });

  // --- P1 desktop notifications (opt-in) ----------------------------------------------
  const toggle = document.getElementById("notify-toggle");
  function notifyOn() { return "Notification" in window && Notification.permission === "granted" && localStorage.getItem("baton.p1") === "on"; }
  function paintToggle() { if (toggle) toggle.setAttribute("aria-pressed", notifyOn() ? "true" : "false"); }
  if (toggle) {
    paintToggle();
    toggle.addEventListener("click", function () {
      if (!("Notification" in window)) return;
      if (notifyOn()) { localStorage.setItem("baton.p1", "off"); paintToggle(); return; }
      Notification.requestPermission().then(function (p) {
        localStorage.setItem("baton.p1", p === "granted" ? "on" : "off"); paintToggle();
      });
    });
  }
  document.addEventListener("htmx:oobAfterSwap", function (evt) {
    const el = evt.detail.target;
    if (!el || el.id !== "p1-alert" || !el.dataset.case || !notifyOn()) return;
    const n = new Notification(el.dataset.title, { body: el.dataset.body, tag: "baton-" + el.dataset.case });
    n.onclick = function () { window.focus(); location.href = el.dataset.url; };
  });

  // --- keyboard ---------------------------------------------------------------------------
  let selectedCase = sessionStorage.getItem("baton.selected");
  function rows() { return Array.from(document.querySelectorAll("#inbox-rows tr.row")); }
  // The selection lives in aria-selected (styled by CSS): htmx's settle step restores the
  // class attribute of swapped rows, so a class would be lost on every live update.
  function select(row) {
    rows().forEach(function (r) { r.removeAttribute("aria-selected"); });
    if (!row) return;
    row.setAttribute("aria-selected", "true");
    row.scrollIntoView({ block: "nearest" });
    selectedCase = row.dataset.case; sessionStorage.setItem("baton.selected", selectedCase);
  }
  function restoreSelection() {
    const all = rows();
    select(all.find(function (r) { return r.dataset.case === selectedCase; }) || all[0]);
  }
  document.addEventListener("DOMContentLoaded", function () { if (page === "inbox") restoreSelection(); });
  document.addEventListener("htmx:oobAfterSwap", function (evt) {
    if (evt.detail.target && evt.detail.target.id === "inbox-list") restoreSelection();
  });
  document.addEventListener("htmx:afterSettle", function () { if (page === "inbox") restoreSelection(); });
  document.addEventListener("click", function (evt) {
    const row = evt.target.closest && evt.target.closest("#inbox-rows tr.row");
    if (row && !evt.target.closest("a")) location.href = row.dataset.url;
  });

  function typing(evt) {
    const t = evt.target;
    return t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
  }
  function openPanel(id, focusSelector) {
    const panel = document.getElementById(id);
    if (!panel) return false;
    panel.open = true;
    const field = panel.querySelector(focusSelector || "textarea, input:not([type=hidden])");
    if (field) {
      field.focus();
      if (field.setSelectionRange && field.value) field.setSelectionRange(field.value.length, field.value.length);
    }
    return true;
  }
  function submit(id) {
    const form = document.getElementById(id);
    if (!form) return false;
    form.requestSubmit();
    return true;
  }
  let pendingG = false;
  document.addEventListener("keydown", function (evt) {
    if (evt.key === "Enter" && (evt.ctrlKey || evt.metaKey) && typing(evt)) {
      const form = evt.target.form;
      if (form) { evt.preventDefault(); form.requestSubmit(); }
      return;
    }
    if (evt.key === "Escape" && typing(evt)) { evt.target.blur(); return; }
    if (typing(evt) || evt.altKey || evt.ctrlKey || evt.metaKey) return;
    const key = evt.key;
    if (pendingG) {
      pendingG = false;
      const view = { m: "mine", q: "queue", l: "all" }[key];
      if (view) { location.href = "/?view=" + view; evt.preventDefault(); }
      return;
    }
    if (key === "g") { pendingG = true; setTimeout(function () { pendingG = false; }, 1000); return; }
    if (key === "?") { const d = document.getElementById("help"); if (d && !d.open) d.showModal(); evt.preventDefault(); return; }
    if (page === "inbox") {
      const all = rows();
      const i = all.findIndex(function (r) { return r.getAttribute("aria-selected") === "true"; });
      if (key === "j") { select(all[Math.min(all.length - 1, i + 1)]); evt.preventDefault(); }
      else if (key === "k") { select(all[Math.max(0, i - 1)]); evt.preventDefault(); }
      else if (key === "Enter" && i >= 0) { location.href = all[i].dataset.url; evt.preventDefault(); }
      return;
    }
    if (page === "case") {
      let handled = false;
      if (key === "a") handled = submit("form-approve");
      else if (key === "c") handled = submit("form-accept");
      else if (key === "e") handled = openPanel("panel-edit");
      else if (key === "r") handled = openPanel("panel-reject") || openPanel("panel-reverse");
      else if (key === "x") handled = openPanel("panel-escalate", "#escalate-skill");
      else if (key === "u" || key === "Escape") { history.length > 1 && document.referrer.indexOf(location.host) >= 0 ? history.back() : (location.href = "/"); handled = true; }
      else if (key === "n") { const next = document.querySelector("#toasts [data-next]"); location.href = next ? next.href : "/?view=mine"; handled = true; }
      if (handled) evt.preventDefault();
    }
  });
  document.addEventListener("click", function (evt) {
    if (evt.target.closest && evt.target.closest("[data-help]")) document.getElementById("help").showModal();
  });
})();

// Live alert queue: server-sent events + reconcile with the store; audible/visual cue; actions.
// Plain JS, no build step. Cards are keyed by event id: a card is replaced, never added twice.
"use strict";
(() => {
  const page = document.getElementById("queue-page");
  const queue = document.getElementById("queue");
  const detail = document.getElementById("detail");
  const live = document.getElementById("live");
  const muteBtn = document.getElementById("mute");
  const staleS = parseFloat(page.dataset.staleS);
  const clockOffsetMs = parseFloat(page.dataset.serverNow) * 1000 - Date.now();  // server minus browser
  let lastChange = parseInt(page.dataset.lastChange, 10) || 0;
  let es = null;
  window.TE_SEEN = window.TE_SEEN || {};  // event id -> epoch ms when its card first appeared (benchmark)

  // --- sound and visual cue ---------------------------------------------------------------------
  let muted = localStorage.getItem("te-muted") === "1";
  let audio = null;
  function showMute() {
    muteBtn.textContent = muted ? "sound: muted" : "sound: on";
    muteBtn.setAttribute("aria-pressed", muted ? "true" : "false");
  }
  muteBtn.addEventListener("click", () => {
    muted = !muted; localStorage.setItem("te-muted", muted ? "1" : "0"); showMute(); ensureAudio();
  });
  function ensureAudio() {
    try {
      if (!audio) audio = new (window.AudioContext || window.webkitAudioContext)();
      if (audio.state === "suspended") audio.resume();
    } catch (e) { audio = null; }
  }
  document.addEventListener("click", ensureAudio, {once: true});
  function beep() {
    if (muted || !audio || audio.state !== "running") return;
    const t = audio.currentTime;
    for (const [dt, f] of [[0, 880], [0.18, 660]]) {
      const o = audio.createOscillator(), g = audio.createGain();
      o.frequency.value = f; o.type = "square";
      g.gain.setValueAtTime(0.08, t + dt); g.gain.exponentialRampToValueAtTime(0.001, t + dt + 0.16);
      o.connect(g).connect(audio.destination); o.start(t + dt); o.stop(t + dt + 0.17);
    }
  }
  let unseen = 0;
  const baseTitle = document.title;
  function cue(card) {
    card.classList.add("new");
    setTimeout(() => card.classList.remove("new"), 4000);
    document.body.classList.remove("flash-alert"); void document.body.offsetWidth;
    document.body.classList.add("flash-alert");
    if (document.hidden) { unseen++; document.title = `(${unseen}) new alert · ${baseTitle}`; }
    beep();
  }
  document.addEventListener("visibilitychange", () => { if (!document.hidden) { unseen = 0; document.title = baseTitle; } });
  showMute();

  // --- cards ------------------------------------------------------------------------------------
  function parse(html) {
    const t = document.createElement("template");
    t.innerHTML = html.trim();
    return t.content.firstElementChild;
  }
  function upsert(id, version, html, announce) {
    const old = document.getElementById("card-" + id);
    if (old && parseInt(old.dataset.version, 10) >= version) return;
    const card = parse(html);
    if (old) {
      if (old.classList.contains("selected")) card.classList.add("selected");
      old.replaceWith(card);
    } else {
      // newest first: by measurement time, then by arrival at the console (the server's order)
      const t = parseFloat(card.dataset.time), r = parseFloat(card.dataset.received);
      let before = null;
      for (const c of queue.children) {
        const ct = parseFloat(c.dataset.time);
        if (ct < t || (ct === t && parseFloat(c.dataset.received) < r)) { before = c; break; }
      }
      queue.insertBefore(card, before);
      if (!(id in window.TE_SEEN)) window.TE_SEEN[id] = performance.timeOrigin + performance.now();
      if (announce && card.dataset.state === "open") cue(card);
    }
    document.getElementById("queue-count").textContent = queue.children.length;
    document.getElementById("empty").hidden = queue.children.length > 0;
    if (detail.querySelector(`.detail[data-id="${CSS.escape(id)}"]`)) loadDetail(id, false);
  }
  for (const c of queue.children) window.TE_SEEN[c.dataset.id] = performance.timeOrigin;
  function markStale() {
    const now = (Date.now() + clockOffsetMs) / 1000;
    for (const c of queue.children) {
      c.classList.toggle("stale", c.dataset.state === "open" && now - parseFloat(c.dataset.received) > staleS);
    }
  }
  setInterval(markStale, 5000);
  markStale();

  // --- detail and actions -----------------------------------------------------------------------
  async function loadDetail(id, push) {
    try {
      const r = await fetch(`/alerts/${encodeURIComponent(id)}?fragment=1`, {credentials: "same-origin"});
      if (r.status === 401) { location.href = "/login?next=/"; return; }
      if (!r.ok) { TE.flash((await r.json().catch(() => ({}))).error || `cannot open alert (HTTP ${r.status})`); return; }
      const keep = detail.querySelector(".close-form") ? new FormData(detail.querySelector(".close-form")) : null;
      const wasSame = detail.querySelector(`.detail[data-id="${CSS.escape(id)}"]`);
      detail.innerHTML = await r.text();
      if (keep && wasSame) {  // an update arrived while typing: keep what the operator entered
        const f = detail.querySelector(".close-form");
        if (f) for (const [k, v] of keep) { if (f.elements[k]) f.elements[k].value = v; }
      }
      for (const c of queue.querySelectorAll(".selected")) c.classList.remove("selected");
      const card = document.getElementById("card-" + id);
      if (card) card.classList.add("selected");
      if (push) history.replaceState(null, "", "/?alert=" + encodeURIComponent(id));
    } catch (e) { TE.flash("network error: " + e.message); }
  }
  queue.addEventListener("click", (ev) => {
    const card = ev.target.closest(".alert-card");
    if (card) loadDetail(card.dataset.id, true);
  });
  queue.addEventListener("keydown", (ev) => {
    const card = ev.target.closest(".alert-card");
    if (card && ev.key === "Enter") loadDetail(card.dataset.id, true);
  });
  async function act(id, action, data) {
    try {
      await TE.post(`/alerts/${encodeURIComponent(id)}/${action}`, data);
      TE.flash("");
      loadDetail(id, false);
    } catch (e) { TE.flash(e.message); }
  }
  detail.addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-action]");
    if (!b) return;
    const box = b.closest(".actions");
    act(box.dataset.id, b.dataset.action, {});
  });
  detail.addEventListener("submit", (ev) => {
    const form = ev.target.closest("form[data-action]");
    if (!form) return;
    ev.preventDefault();
    act(form.closest(".actions").dataset.id, form.dataset.action, new FormData(form));
  });

  // --- live stream and reconciliation -----------------------------------------------------------
  async function reconcile() {
    try {
      const r = await fetch("/api/queue", {credentials: "same-origin", headers: {"Accept": "application/json"}});
      if (r.status === 401) { location.href = "/login?next=/"; return; }
      if (!r.ok) return;
      const d = await r.json();
      for (const a of d.alerts.slice().reverse()) upsert(a.event_id, a.version, a.html, true);
    } catch (e) { /* the stream's reconnect will try again */ }
  }
  function setLive(state, text) { live.className = "live " + state; live.textContent = text; }
  function connect() {
    es = new EventSource("/events?after=" + lastChange);
    es.addEventListener("open", () => { setLive("ok", "live"); reconcile(); });
    es.addEventListener("error", () => {
      setLive("down", "reconnecting…");
      // EventSource retries by itself after network errors, but gives up for good on an HTTP error
      // (e.g. a proxy's 502 while the console restarts): then start a new one.
      if (es.readyState === EventSource.CLOSED) {
        reconcile();  // answers 401 when the login expired: that sends the operator to the login page
        setTimeout(connect, 2000);
      }
    });
    es.addEventListener("alert", (ev) => {
      const d = JSON.parse(ev.data);
      lastChange = parseInt(ev.lastEventId, 10) || lastChange;
      upsert(d.event_id, d.version, d.html, true);
    });
    es.addEventListener("station", (ev) => { lastChange = parseInt(ev.lastEventId, 10) || lastChange; });
    es.addEventListener("dberror", (ev) => { TE.flash("console database error: " + JSON.parse(ev.data)); });
    es.addEventListener("reload", () => { location.reload(); });
  }
  connect();
})();

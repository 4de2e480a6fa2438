// Shared page helpers (no build step, no CDN): CSRF-carrying POSTs and a flash message line.
"use strict";
const TE = (() => {
  function csrf() {
    const m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.content : "";
  }
  function flash(text, kind) {
    const el = document.getElementById("flash");
    if (!el) return;
    el.textContent = text;
    el.className = "flash " + (kind || "error");
    el.hidden = !text;
  }
  // POST form data; resolves to the parsed JSON answer, or rejects with the server's one-line error.
  async function post(url, data) {
    const body = new URLSearchParams(data || {});
    let resp;
    try {
      resp = await fetch(url, {method: "POST", body, credentials: "same-origin",
                               headers: {"X-CSRF-Token": csrf(), "Accept": "application/json"}});
    } catch (e) {
      throw new Error("network error: the console did not answer (" + e.message + ")");
    }
    let json = {};
    try { json = await resp.json(); } catch (e) { /* not JSON */ }
    if (resp.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); }
    if (!resp.ok) throw new Error(json.error || ("HTTP " + resp.status));
    return json;
  }
  return {csrf, flash, post};
})();

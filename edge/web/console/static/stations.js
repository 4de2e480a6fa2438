// Stations page: re-read the server-rendered table every 2 s (liveness is judged by the server).
"use strict";
(() => {
  const box = document.getElementById("stations");
  async function refresh() {
    try {
      const r = await fetch(box.dataset.refresh, {credentials: "same-origin"});
      if (r.status === 401) { location.href = "/login?next=/stations"; return; }
      if (r.ok) { box.innerHTML = await r.text(); TE.flash(""); }
      else TE.flash(`stations: HTTP ${r.status}`);
    } catch (e) { TE.flash("console not reachable: " + e.message); }
  }
  setInterval(refresh, 2000);
})();

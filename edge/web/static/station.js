// Station pages: reconnecting MJPEG views, and the kiosk's message from server-sent events.
"use strict";
(() => {
  // Live/alignment view: the <img> shows an MJPEG stream; if it breaks (station restart, network
  // cut) try again every 2 s.
  const img = document.getElementById("view");
  if (img) {
    img.addEventListener("error", () => {
      setTimeout(() => { img.src = img.dataset.src + "?t=" + Date.now(); }, 2000);
    });
  }
  // Kiosk: one message at a time; EventSource reconnects by itself.
  const box = document.getElementById("kiosk");
  if (box) {
    const msg = document.getElementById("message");
    const temp = document.getElementById("temp");
    const show = (g) => {
      msg.textContent = g.text || "…";
      box.className = "kiosk-message key-" + g.message_key;
      box.dataset.key = g.message_key;
      box.dataset.seq = g.seq;
      box.dataset.people = g.people === undefined ? 0 : g.people;
      box.dataset.reason = g.reason || "";
      if (g.temp_c !== undefined) { temp.textContent = g.temp_c.toFixed(1) + " °C"; temp.hidden = false; }
      else { temp.hidden = true; }
      // when it reached the screen (next paint), for the guidance-timing bench; the last 200 only
      requestAnimationFrame(() => {
        shownLog.push({key: g.message_key, track: g.track_id, seq: g.seq, shown_unix_ms: Date.now()});
        if (shownLog.length > 200) shownLog.shift();
      });
    };
    const shownLog = window.guidanceShown = [];
    const es = new EventSource("/guidance/events");
    es.onmessage = (e) => show(JSON.parse(e.data));
    // station unreachable: never leave a stale "please proceed" up
    es.onerror = () => show({message_key: "paused", text: box.dataset.paused, seq: -1});
  }
})();

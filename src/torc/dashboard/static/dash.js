// torc dashboard: confirmations, the live event stream and Plotly charts. No build step, no CDN.
"use strict";
const torcDash = (() => {
  document.addEventListener("submit", (e) => {
    const text = e.target.dataset.confirm;
    if (text && !window.confirm(text)) e.preventDefault();
  });

  function layout(title) {
    return { title: { text: title }, margin: { t: 40, r: 10, b: 40, l: 50 }, height: 260 };
  }

  async function progressPlot(el) {
    if (!el || typeof Plotly === "undefined") return;
    try {
      const res = await fetch(el.dataset.src);
      const body = await res.json();
      if (!res.ok) throw new Error(body.error || res.statusText);
      if (!body.series.length) { el.innerHTML = '<p class="empty">No finished jobs yet.</p>'; return; }
      el.innerHTML = "";
      const traces = body.series.map((s) => ({ x: s.x, y: s.y, name: s.status, mode: "lines", line: { shape: "hv" } }));
      Plotly.newPlot(el, traces, { ...layout("Finished jobs over time"), legend: { orientation: "h" } },
        { displaylogo: false, responsive: true });
    } catch (err) {
      el.innerHTML = `<p class="empty">Progress unavailable: ${err.message}</p>`;
    }
  }

  // After events, re-read the job counts and the progress chart (at most once a second).
  function refresher(counts, plot) {
    let timer = null;
    async function refresh() {
      timer = null;
      try {
        const res = await fetch(counts.dataset.src);
        if (!res.ok) return;
        const body = await res.json();
        const parts = Object.entries(body.counts).filter(([, n]) => n > 0).map(([status, n]) =>
          `<a class="count status-${status}" href="?status=${status}">${status} <b>${n}</b></a>`);
        parts.push(`<span class="count total">total <b>${body.total}</b></span>`);
        counts.innerHTML = parts.join("\n");
        const done = ["completed", "failed", "canceled", "terminated"].reduce((a, s) => a + (body.counts[s] || 0), 0);
        const bar = document.querySelector(".progress div");
        if (bar && body.total) bar.style.width = `${(100 * done) / body.total}%`;
        progressPlot(plot);
      } catch (err) {
        // the next event tries again
      }
    }
    return () => { if (!timer) timer = setTimeout(refresh, 1000); };
  }

  function eventStream(list, state, onEvent) {
    if (!list || !window.EventSource) return;
    const source = new EventSource(list.dataset.src);
    const setState = (text, cls) => { state.textContent = text; state.className = "tag " + (cls || ""); };
    const add = (type, data) => {
      const li = document.createElement("li");
      li.className = "event";
      li.dataset.type = type;
      const b = document.createElement("b");
      b.textContent = type;
      const span = document.createElement("span");
      span.textContent = new Date().toLocaleTimeString() + " " + data;
      li.append(b, span);
      list.prepend(li);
      while (list.children.length > 200) list.lastChild.remove();
    };
    source.addEventListener("connected", () => setState("live", "live"));
    source.addEventListener("dash_error", (e) => { setState("error", "bad"); add("error", e.data); });
    source.onerror = () => setState("reconnecting");
    source.addEventListener("torc", (e) => {
      const event = JSON.parse(e.data);
      const body = event.data && typeof event.data === "object" && "data" in event.data ? event.data.data : event.data;
      add(event.type, typeof body === "string" ? body : JSON.stringify(body));
      if (onEvent) onEvent(event);
    });
  }

  function figure(el) {
    if (typeof Plotly === "undefined") return;
    const fig = JSON.parse(el.dataset.figure);
    Plotly.newPlot(el, fig.data, fig.layout, { displaylogo: false, responsive: true });
  }

  return { progressPlot, eventStream, figure, refresher };
})();

// Night viewer: stacked channels with min/max traces fetched for the span in view (at most
// two values per pixel), event overlays, zoom/pan down to 2 s, keyboard jumps, review.
"use strict";
(function () {
  const root = document.getElementById("viewer");
  const W = root.dataset.wearer, N = root.dataset.night, CSRF = root.dataset.csrf;
  const api = `/api/w/${encodeURIComponent(W)}/${encodeURIComponent(N)}`;
  const MIN_SPAN = 2;
  const COLORS = {cramp: "rgba(214,39,40,0.30)", limb_movement: "rgba(31,119,180,0.18)",
    plm_series: "rgba(148,103,189,0.15)", rollover: "rgba(44,160,44,0.25)", awakening: "rgba(255,127,14,0.25)",
    sustained_activity: "rgba(227,119,194,0.22)", bed_exit: "rgba(140,86,75,0.30)", artifact: "rgba(127,127,127,0.25)", signal_lost: "rgba(0,0,0,0.20)"};
  let meta = null, view = [0, 1], plots = [], start = null, duration = 1, requests = [], seq = 0;
  window.ncViewer = {requests, get view() { return view.slice(); }, get events() { return meta ? meta.events : []; }};

  const TZ = root.dataset.tz || "UTC";  // the clinician's time zone (Settings)
  const hms = new Intl.DateTimeFormat("en-GB", {timeZone: TZ, hour: "2-digit", minute: "2-digit",
                                                  second: "2-digit", hourCycle: "h23"});
  const clock = (s) => {
    const d = new Date(start.getTime() + s * 1000);
    const ms = String(d.getUTCMilliseconds()).padStart(3, "0");
    return hms.format(d) + (view[1] - view[0] < 60 ? "." + ms : "");  // ms when zoomed in
  };

  async function json(url, opts) {
    const r = await fetch(url, opts);
    if (!r.ok) throw new Error(`${r.status} ${(await r.text()).slice(0, 200)}`);
    return r.json();
  }

  function overlay(u) {
    const ctx = u.ctx, [a, b] = [u.scales.x.min, u.scales.x.max];
    ctx.save();
    for (const e of meta.events) {
      if (e.end_s < a || e.start_s > b || e.status === "rejected") continue;
      const x0 = u.valToPos(Math.max(e.start_s, a), "x", true), x1 = u.valToPos(Math.min(e.end_s, b), "x", true);
      ctx.fillStyle = COLORS[e.kind] || "rgba(0,0,0,0.1)";
      ctx.fillRect(x0, u.bbox.top, Math.max(2, x1 - x0), u.bbox.height);
    }
    ctx.restore();
  }

  function makePlot(label, unit, el) {
    const width = Math.max(300, el.clientWidth || 900);
    const opts = {
      title: label, width, height: label === "sleep/wake" ? 90 : 140,
      scales: {x: {time: false}},
      axes: [{values: (u, vals) => vals.map(clock), space: 90}, {label: unit, size: 60}],
      series: [{}, {label: "min", stroke: "#345", width: 1}, {label: "max", stroke: "#345", width: 1},
        {label: "envelope", stroke: "#c0262d", width: 1.5}],
      bands: [{series: [2, 1], fill: "rgba(51,68,85,0.35)"}],
      cursor: {drag: {x: true, y: false}},
      hooks: {
        drawClear: [overlay],
        setSelect: [(u) => {
          if (u.select.width < 3) return;
          const a = u.posToVal(u.select.left, "x"), b = u.posToVal(u.select.left + u.select.width, "x");
          u.setSelect({left: 0, width: 0}, false);
          setView(a, b);
        }],
      },
      legend: {show: false},
    };
    return new uPlot(opts, [[0], [null], [null], [null]], el);
  }

  async function load() {
    const span = view[1] - view[0];
    document.getElementById("range").textContent =
      `${clock(view[0])} – ${clock(view[1])} ${TZ} (${span >= 120 ? (span / 60).toFixed(1) + " min" : span.toFixed(1) + " s"})`;
    root.dataset.state = "loading";
    const my = ++seq;  // a newer view supersedes answers still on their way
    const h = meta.hypnogram;
    const traced = [];
    for (const p of plots) {
      if (p.label !== "sleep/wake") { traced.push(p); continue; }
      const xs = [], ys = [];
      if (h) h.wake.forEach((w, i) => { const t = i * h.epoch_s; if (t + h.epoch_s >= view[0] && t <= view[1]) { xs.push(t); ys.push(w); } });
      p.u.batch(() => {
        p.u.setData([xs, ys, ys, ys.map(() => null)], false);
        p.u.setScale("x", {min: view[0], max: view[1]});
      });
    }
    // One request for every channel of the view; each chart's pixel width sets the buckets.
    const px = Math.round(traced[0].u.bbox.width / devicePixelRatio) || traced[0].u.width;
    const q = {channels: traced.map((p) => p.label).join(","), t0: view[0].toFixed(3), t1: view[1].toFixed(3), px};
    requests.push({channels: traced.length, t0: +q.t0, t1: +q.t1, px});
    const t0 = performance.now();
    const d = await json(`${api}/traces?` + new URLSearchParams(q));
    if (my !== seq) return;
    const t1 = performance.now();
    for (const p of traced) {
      const tr = d.traces[p.label];
      // The EMG envelope (mean absolute value) where min/max bands hide it; raw samples show themselves.
      const env = p.label.startsWith("EMG") && tr.source === "envelope" && tr.mav ? tr.mav : tr.t.map(() => null);
      p.u.batch(() => {  // one redraw per chart
        p.u.setData([tr.t, tr.min, tr.max, env], false);
        p.u.setScale("x", {min: view[0], max: view[1]});
      });
      p.el.dataset.source = tr.source;
      p.el.dataset.points = tr.t.length;
    }
    window.ncViewer.timing = {fetch_ms: t1 - t0, draw_ms: performance.now() - t1};
    root.dataset.state = "ready";
  }

  function setView(a, b) {
    let span = Math.max(MIN_SPAN, b - a);
    span = Math.min(span, duration);
    let c = (a + b) / 2;
    a = Math.max(0, Math.min(duration - span, c - span / 2));
    view = [a, a + span];
    return load();
  }

  function renderEvents() {
    const tbody = document.querySelector("#events tbody");
    tbody.replaceChildren();
    for (const e of meta.events) {
      if (e.kind === "limb_movement" && e.status === "detected") continue;  // hundreds a night
      const tr = document.createElement("tr");
      tr.dataset.key = e.key;
      tr.dataset.status = e.status;
      tr.dataset.kind = e.kind;
      tr.className = e.status;
      // Stored strings go in as text only (never as HTML): a hostile label stays a label.
      const cell = (text, cls) => { const td = tr.insertCell(); td.textContent = text; if (cls) td.className = cls; return td; };
      const jump = document.createElement("a");
      jump.href = "#"; jump.className = "jump"; jump.textContent = clock(e.start_s);
      tr.insertCell().appendChild(jump);
      cell(e.kind); cell(e.side || ""); cell(`${(e.end_s - e.start_s).toFixed(1)} s`);
      cell(e.status + (e.reviewed_by ? ` (${e.reviewed_by})` : ""), "status");
      const tools = tr.insertCell();
      for (const [cls, label] of [["accept", "Accept"], ["reject", "Reject"]]) {
        const b = document.createElement("button"); b.className = cls; b.textContent = label;
        tools.append(b, " ");
      }
      const sel = document.createElement("select"); sel.className = "relabel";
      for (const k of ["", ...Object.keys(COLORS)]) {
        const o = document.createElement("option"); o.value = k; o.textContent = k || "relabel…"; sel.appendChild(o);
      }
      tools.appendChild(sel);
      tr.querySelector(".jump").onclick = (ev) => { ev.preventDefault(); focusEvent(e); };
      tr.querySelector(".accept").onclick = () => review({action: "accept", event: e.key});
      tr.querySelector(".reject").onclick = () => review({action: "reject", event: e.key});
      tr.querySelector(".relabel").onchange = (ev) => ev.target.value && review({action: "relabel", event: e.key, kind: ev.target.value});
      tbody.appendChild(tr);
    }
  }

  async function review(body) {
    const d = await json(`${api}/review`, {method: "POST", headers: {"Content-Type": "application/json", "X-CSRF-Token": CSRF}, body: JSON.stringify(body)});
    meta.events = d.events;
    renderEvents();
    plots.forEach((p) => p.u.redraw(false));
  }

  function focusEvent(e) {
    const pad = Math.max(5, (e.end_s - e.start_s) * 0.5);
    return setView(e.start_s - pad, e.end_s + pad);
  }

  function jump(dir) {
    const evs = meta.events.filter((e) => e.status !== "rejected" && e.kind !== "limb_movement").sort((a, b) => a.start_s - b.start_s);
    const mid = (view[0] + view[1]) / 2;
    const next = dir > 0 ? evs.find((e) => e.start_s > mid + 0.01) : evs.reverse().find((e) => e.start_s < mid - 0.01 - (view[1] - view[0]) / 2);
    if (next) focusEvent(next);
  }

  function zoom(f) { const c = (view[0] + view[1]) / 2, h = (view[1] - view[0]) * f / 2; return setView(c - h, c + h); }
  function pan(f) { const s = view[1] - view[0]; return setView(view[0] + s * f, view[1] + s * f); }

  async function init() {
    meta = await json(`${api}/meta`);
    start = new Date(meta.recording.start);
    duration = meta.recording.duration_s;
    view = [0, duration];
    const charts = document.getElementById("charts");
    const chans = meta.recording.channels.map((c) => [c.label, c.kind === "emg" ? "µV" : "g"]);
    for (const side of ["L", "R"]) {  // movement of each leg: the largest accelerometer-axis range
      if (meta.recording.channels.some((c) => c.kind === "acc" && c.label.startsWith(`ACC ${side}-`))) chans.push([`activity ${side}`, "g"]);
    }
    chans.push(["sleep/wake", "wake"]);
    for (const [label, unit] of chans) {
      const el = document.createElement("div");
      el.className = "chan";
      el.dataset.channel = label;
      charts.appendChild(el);
      plots.push({label, el, u: makePlot(label, unit, el)});
    }
    renderEvents();
    document.getElementById("whole").onclick = () => setView(0, duration);
    document.getElementById("zoom-in").onclick = () => zoom(0.25);
    document.getElementById("zoom-out").onclick = () => zoom(4);
    document.getElementById("pan-left").onclick = () => pan(-0.5);
    document.getElementById("pan-right").onclick = () => pan(0.5);
    document.getElementById("next-event").onclick = () => jump(1);
    document.getElementById("prev-event").onclick = () => jump(-1);
    document.addEventListener("keydown", (ev) => {
      if (ev.target.closest("input, select, textarea")) return;
      const k = {n: () => jump(1), p: () => jump(-1), ArrowLeft: () => pan(-0.5), ArrowRight: () => pan(0.5),
        "+": () => zoom(0.5), "=": () => zoom(0.5), "-": () => zoom(2), Home: () => setView(0, duration)}[ev.key];
      if (k) { ev.preventDefault(); k(); }
    });
    const form = document.getElementById("add-event");
    form.start_s.value = (view[0]).toFixed(1);
    form.onsubmit = (ev) => {
      ev.preventDefault();
      review({action: "add", kind: form.kind.value, side: form.side.value || null,
        start_s: parseFloat(form.start_s.value), end_s: parseFloat(form.end_s.value)});
    };
    addEventListener("resize", () => plots.forEach((p) => p.u.setSize({width: Math.max(300, p.el.clientWidth), height: p.u.height})));
    await load();
  }
  init().catch((e) => {
    root.dataset.state = "error";
    const p = document.createElement("p"); p.className = "error"; p.setAttribute("role", "alert"); p.textContent = e.message;
    root.prepend(p);
  });
})();

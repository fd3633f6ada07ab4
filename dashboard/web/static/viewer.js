// Night viewer, paged as PSG scoring software pages: 30-s epochs and fixed window lengths, an
// overview strip of the whole night, a montage (channels shown, order, gain in units per
// division) kept per clinician, EMG through a display filter, a cursor readout, and the event
// list as a work queue (filters, keyboard review with comment and undo, drag to add).
// Traces are min/max per pixel fetched for the span in view (at most two values per pixel).
"use strict";
(function () {
  const root = document.getElementById("viewer");
  const W = root.dataset.wearer, N = root.dataset.night, CSRF = root.dataset.csrf;
  const api = `/api/w/${encodeURIComponent(W)}/${encodeURIComponent(N)}`;
  const MIN_SPAN = 2, EPOCH = 30, DIVS = 8, ROW_H = 30;
  const COLORS = {cramp: "rgba(214,39,40,0.30)", limb_movement: "rgba(31,119,180,0.18)",
    plm_series: "rgba(148,103,189,0.15)", rollover: "rgba(44,160,44,0.25)", awakening: "rgba(255,127,14,0.25)",
    sustained_activity: "rgba(227,119,194,0.22)", bed_exit: "rgba(140,86,75,0.30)", artifact: "rgba(127,127,127,0.25)",
    signal_lost: "rgba(0,0,0,0.20)"};
  const SOLID = (k) => (COLORS[k] || "rgba(0,0,0,0.3)").replace(/[\d.]+\)$/, "0.9)");
  const GAINS = {"µV": [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000], g: [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1]};
  const INCRS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800];
  let meta = null, view = [0, 1], plots = [], start = null, duration = 1, seq = 0, base = 0;
  let lastTicks = null, dragChart = null, pos = 0, selected = null, focusChan = null, shiftDrag = false;
  const requests = [], undoStack = [];
  const montage = JSON.parse(root.dataset.montage || "{}");
  montage.order = montage.order || []; montage.hidden = montage.hidden || []; montage.gain = montage.gain || {};
  montage.filter = montage.filter || "hp10";
  const list = {all: [], shown: []};

  const TZ = root.dataset.tz || "UTC";  // the clinician's time zone (Settings)
  const hms = new Intl.DateTimeFormat("en-GB", {timeZone: TZ, hour: "2-digit", minute: "2-digit",
                                                  second: "2-digit", hourCycle: "h23"});
  const clock = (s, fine) => {
    const d = new Date(start.getTime() + s * 1000);
    const ms = String(d.getUTCMilliseconds()).padStart(3, "0");
    return hms.format(d) + ((fine ?? view[1] - view[0] < 60) ? "." + ms.slice(0, view[1] - view[0] < 5 ? 3 : 1) : "");
  };
  const spanText = (s) => s >= 120 ? `${(s / 60).toFixed(s >= 600 ? 0 : 1)} min` : `${+s.toFixed(1)} s`;
  function tzOffset(date) {  // seconds the clinician's zone is ahead of UTC at ``date``
    const p = new Intl.DateTimeFormat("en-US", {timeZone: TZ, hourCycle: "h23", year: "numeric", month: "2-digit",
      day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit"}).formatToParts(date);
    const g = (t) => +p.find((x) => x.type === t).value;
    return (Date.UTC(g("year"), g("month") - 1, g("day"), g("hour"), g("minute"), g("second"))
            - Math.floor(date.getTime() / 1000) * 1000) / 1000;
  }
  const $ = (id) => document.getElementById(id);
  window.ncViewer = {requests, get view() { return view.slice(); }, get events() { return meta ? meta.events : []; },
    get selected() { return selected; }, get montage() { return JSON.parse(JSON.stringify(montage)); },
    drawn(label) { const p = plots.find((q) => q.label === label); return p ? {t: p.u.data[0], min: p.u.data[1], max: p.u.data[2], filter: p.el.dataset.filter, source: p.el.dataset.source} : null; },
    get ticks() { return lastTicks; }, setView: (a, b) => setView(a, b)};

  async function json(url, opts) {
    const r = await fetch(url, opts);
    if (!r.ok) throw new Error(`${r.status} ${(await r.text()).slice(0, 200)}`);
    return r.json();
  }

  // ---------------------------------------------------------------- charts
  function overlay(u) {
    const ctx = u.ctx, [a, b] = [u.scales.x.min, u.scales.x.max];
    ctx.save();
    for (const e of meta.events) {
      if (e.end_s < a || e.start_s > b || e.status === "rejected") continue;
      const x0 = u.valToPos(Math.max(e.start_s, a), "x", true), x1 = u.valToPos(Math.min(e.end_s, b), "x", true);
      ctx.fillStyle = COLORS[e.kind] || "rgba(0,0,0,0.1)";
      ctx.fillRect(x0, u.bbox.top, Math.max(2, x1 - x0), u.bbox.height);
      if (e.key === selected) { ctx.strokeStyle = "#111"; ctx.lineWidth = 2; ctx.strokeRect(x0, u.bbox.top + 1, Math.max(2, x1 - x0), u.bbox.height - 2); }
    }
    ctx.restore();
  }

  function splits(u, ax, min, max, incr) {  // ticks on round clock times of the clinician's zone
    const out = [];
    for (let t = Math.ceil((min + base) / incr - 1e-9) * incr - base; t <= max + 1e-9; t += incr) out.push(+t.toFixed(3));
    lastTicks = {incr, ticks: out, base};
    return out;
  }

  function yRange(p) {
    return (u, lo, hi) => {
      const g = montage.gain[p.label];
      if (!g) {  // automatic: the data in view, a little headroom
        if (lo == null || hi == null || !isFinite(lo)) return [-1, 1];
        const pad = (hi - lo) * 0.05 || 1; return [lo - pad, hi + pad];
      }
      const filtered = p.el.dataset.filter && p.el.dataset.filter !== "off";
      const mid = filtered ? 0 : (lo != null && hi != null && isFinite(lo) ? (lo + hi) / 2 : 0);
      return [mid - g * DIVS / 2, mid + g * DIVS / 2];
    };
  }

  function makePlot(p) {
    const width = Math.max(300, p.el.clientWidth || 900);
    const g = () => montage.gain[p.label];
    const opts = {
      width, height: p.kind === "emg" ? 120 : p.label === "sleep/wake" ? 60 : 90,
      scales: {x: {time: false}, y: {range: yRange(p)}},
      axes: [{values: (u, vals) => vals.map((v) => clock(v)), space: 80, incrs: INCRS, splits},
        {label: p.unit, size: 64, splits: (u, ax, lo, hi, incr) => {
          const d = g() || incr, out = [];  // a fixed gain: one tick per division
          for (let v = g() ? lo : Math.ceil(lo / d) * d; v <= hi + d * 1e-6; v += d) out.push(v);
          return out;
        }, values: (u, vals) => vals.map((v) => +v.toPrecision(3))}],
      series: [{}, {label: "min", stroke: "#345", width: 1}, {label: "max", stroke: "#345", width: 1},
        {label: "envelope", stroke: "#c0262d", width: 1.5}],
      bands: [{series: [2, 1], fill: "rgba(51,68,85,0.35)"}],
      cursor: {drag: {x: true, y: false}, sync: {key: "nc-" + N}},
      hooks: {
        drawClear: [overlay],
        setSelect: [(u) => {
          if (u.select.width < 3 || dragChart !== p) return;  // synced charts show the span too
          const a = u.posToVal(u.select.left, "x"), b = u.posToVal(u.select.left + u.select.width, "x");
          if (shiftDrag) { proposeEvent(a, b, p); return; }  // shift-drag marks a span to add
          u.setSelect({left: 0, width: 0}, false);
          setView(a, b);
        }],
        setCursor: [(u) => readout(u)],
      },
      legend: {show: false},
    };
    const u = new uPlot(opts, [[0], [null], [null], [null]], p.el.querySelector(".plot"));
    u.over.addEventListener("mousedown", (ev) => { shiftDrag = ev.shiftKey; dragChart = p; });
    return u;
  }

  function readout(u) {
    const t = u.cursor.left >= 0 ? u.posToVal(u.cursor.left, "x") : null;
    if (t == null || !isFinite(t)) return;
    const parts = [];
    for (const p of plots) {
      if (p.el.hidden) continue;
      const d = p.u.data, i = p.u.cursor.idx;
      if (i == null || d[0][i] == null) continue;
      const lo = d[1][i], hi = d[2][i];
      const f = (v) => v == null ? "–" : (p.unit === "g" ? v.toFixed(3) : p.unit === "wake" ? String(v) : v.toFixed(1));
      parts.push(`${p.label}: ${p.label === "sleep/wake" ? (hi ? "awake" : "asleep") : lo === hi ? f(hi) : `${f(lo)} … ${f(hi)}`} ${p.unit === "wake" ? "" : p.unit}`);
    }
    $("readout").textContent = `${clock(t, true)} ${TZ} · ${parts.join(" · ")}`;
  }

  async function load() {
    const span = view[1] - view[0];
    const ep = span === EPOCH ? ` · epoch ${Math.floor(view[0] / EPOCH) + 1} of ${Math.ceil(duration / EPOCH)}` : "";
    $("range").textContent = `${clock(view[0])} – ${clock(view[1])} ${TZ} (${spanText(span)})${ep}`;
    root.dataset.state = "loading";
    drawOverview();
    const my = ++seq;  // a newer view supersedes answers still on their way
    const h = meta.hypnogram;
    const traced = [];
    for (const p of plots) {
      if (p.el.hidden) continue;
      if (p.label !== "sleep/wake") { traced.push(p); continue; }
      const xs = [], ys = [];
      if (h) h.wake.forEach((w, i) => { const t = i * h.epoch_s; if (t + h.epoch_s >= view[0] && t <= view[1]) { xs.push(t); ys.push(w); } });
      p.u.batch(() => {
        p.u.setData([xs, ys, ys, ys.map(() => null)], false);
        p.u.setScale("x", {min: view[0], max: view[1]});
      });
    }
    if (!traced.length) { root.dataset.state = "ready"; return; }
    // One request for every channel of the view; each chart's pixel width sets the buckets.
    const px = Math.round(traced[0].u.bbox.width / devicePixelRatio) || traced[0].u.width;
    const q = {channels: traced.map((p) => p.label).join(","), t0: view[0].toFixed(3), t1: view[1].toFixed(3), px,
      filter: montage.filter};
    requests.push({channels: traced.length, t0: +q.t0, t1: +q.t1, px, filter: montage.filter});
    const t0 = performance.now();
    const d = await json(`${api}/traces?` + new URLSearchParams(q));
    if (my !== seq) return;
    const t1 = performance.now();
    for (const p of traced) {
      const tr = d.traces[p.label];
      p.el.dataset.source = tr.source;
      p.el.dataset.points = tr.t.length;
      p.el.dataset.filter = tr.filter || "off";
      p.el.querySelector(".filt").textContent = p.kind !== "emg" ? "" : tr.filter && tr.filter !== "off"
        ? `${$("filter").selectedOptions[0].textContent}${tr.notch_hz ? `, notch ${tr.notch_hz} Hz` : ""}${tr.source === "envelope" ? " (peak per frame)" : ""}`
        : "unfiltered";
      // The envelope (mean absolute value) on request, where min/max bands are drawn.
      const env = montage.envelope && p.kind === "emg" && tr.source === "envelope" && tr.mav && (!tr.filter || tr.filter === "off")
        ? tr.mav : tr.t.map(() => null);
      p.u.batch(() => {  // one redraw per chart
        p.u.setData([tr.t, tr.min, tr.max, env], false);
        p.u.setScale("x", {min: view[0], max: view[1]});
      });
    }
    window.ncViewer.timing = {fetch_ms: t1 - t0, draw_ms: performance.now() - t1};
    root.dataset.state = "ready";
  }

  function setView(a, b) {
    let span = Math.max(MIN_SPAN, b - a);
    span = Math.min(span, duration);
    a = Math.max(0, Math.min(duration - span, a));
    view = [a, a + span];
    $("window").value = [10, 30, 120, 300].includes(Math.round(span)) && Math.abs(span - Math.round(span)) < 1e-6
      ? String(Math.round(span)) : span >= duration - 1e-6 ? "night" : "custom";
    return load();
  }
  const centre = (c, span) => setView(c - span / 2, c + span / 2);

  function setWindow(v) {  // a fixed window from the epoch in view
    if (v === "night") return setView(0, duration);
    const span = +v;
    montage.window_s = span; saveMontage();
    const a = span >= EPOCH ? Math.floor((view[0] + 1e-6) / EPOCH) * EPOCH : view[0];
    return setView(a, a + span);
  }
  function page(dir) {  // PgDn / PgUp: one window on, epochs kept aligned
    const span = view[1] - view[0];
    let a = view[0] + dir * span;
    if (span >= EPOCH) a = Math.round(a / EPOCH) * EPOCH;
    pos = Math.max(0, a);
    return setView(a, a + span);
  }
  function pan(f) { const s = view[1] - view[0]; pos = Math.max(0, view[0] + s * f); return setView(view[0] + s * f, view[1] + s * f); }
  function zoom(f) { const c = (view[0] + view[1]) / 2; return centre(c, (view[1] - view[0]) * f); }

  // ---------------------------------------------------------------- overview strip
  function drawOverview() {
    const cv = $("overview"), dpr = devicePixelRatio || 1;
    const w = cv.clientWidth, hgt = cv.clientHeight;
    cv.width = w * dpr; cv.height = hgt * dpr;
    const ctx = cv.getContext("2d"); ctx.scale(dpr, dpr);
    const x = (t) => t / duration * w;
    ctx.fillStyle = "#eef1f4"; ctx.fillRect(0, 0, w, hgt);
    const h = meta.hypnogram;
    if (h) h.wake.forEach((wk, i) => {
      ctx.fillStyle = wk ? "#f4b183" : "#9dc3e6";
      ctx.fillRect(x(i * h.epoch_s), hgt - 14, Math.max(1, x(h.epoch_s)), 14);
    });
    for (const e of meta.events) {
      if (e.status === "rejected") continue;
      const big = e.kind === "cramp";
      ctx.fillStyle = SOLID(e.kind);
      ctx.fillRect(x(e.start_s), big ? 2 : 12, Math.max(big ? 3 : 1, x(e.end_s) - x(e.start_s)), big ? 24 : 12);
    }
    ctx.strokeStyle = "#111"; ctx.lineWidth = 2; ctx.fillStyle = "rgba(0,0,0,0.12)";
    const a = x(view[0]), bw = Math.max(3, x(view[1]) - a);
    ctx.fillRect(a, 0, bw, hgt); ctx.strokeRect(a, 1, bw, hgt - 2);
    cv.dataset.window = `${view[0].toFixed(1)},${view[1].toFixed(1)}`;
  }

  // ---------------------------------------------------------------- events: the work queue
  const filt = () => ({kind: $("f-kind").value, side: $("f-side").value, status: $("f-status").value});
  function matches(e, f) {
    if (f.kind && e.kind !== f.kind) return false;
    if (f.side && (e.side || "") !== (f.side === "none" ? "" : f.side)) return false;
    if (f.status === "todo" && e.status !== "detected") return false;
    if (f.status === "reviewed" && e.status === "detected") return false;
    if (f.status && !["todo", "reviewed"].includes(f.status) && e.status !== f.status) return false;
    return true;
  }
  function refilter() {
    const f = filt();
    list.all = meta.events.slice().sort((a, b) => a.start_s - b.start_s);
    list.shown = list.all.filter((e) => matches(e, f));
    $("event-count").textContent = `${list.shown.length} of ${list.all.length} events`;
    renderRows();
  }
  function renderRows() {
    const box = $("event-box"), tbody = document.querySelector("#events tbody");
    const first = Math.max(0, Math.floor(box.scrollTop / ROW_H) - 10);
    const last = Math.min(list.shown.length, first + Math.ceil((box.clientHeight || 360) / ROW_H) + 20);
    const spacer = (n) => { const tr = document.createElement("tr"); tr.className = "spacer"; tr.style.height = `${n * ROW_H}px`; return tr; };
    tbody.replaceChildren(spacer(first));
    for (const e of list.shown.slice(first, last)) tbody.appendChild(row(e));
    tbody.appendChild(spacer(list.shown.length - last));
  }
  function row(e) {
    const tr = document.createElement("tr");
    tr.dataset.key = e.key; tr.dataset.status = e.status; tr.dataset.kind = e.kind;
    tr.className = e.status + (e.key === selected ? " selected" : "");
    tr.style.height = `${ROW_H}px`;
    // Stored strings go in as text only (never as HTML): a hostile label stays a label.
    const cell = (text, cls) => { const td = tr.insertCell(); td.textContent = text; if (cls) td.className = cls; return td; };
    const jump = document.createElement("a");
    jump.href = "#"; jump.className = "jump"; jump.textContent = clock(e.start_s, false);
    tr.insertCell().appendChild(jump);
    cell(e.kind.replace("_", " ")); cell(e.side || "–");
    cell(`${(e.end_s - e.start_s).toFixed(1)} s`);
    cell(e.status + (e.reviewed_by ? ` (${e.reviewed_by})` : ""), "status");
    cell(e.review_note || "", "note");
    const tools = tr.insertCell();
    for (const [cls, label] of [["accept", "Accept"], ["reject", "Reject"]]) {
      const b = document.createElement("button"); b.className = cls; b.textContent = label; b.type = "button";
      tools.append(b, " ");
    }
    const sel = document.createElement("select"); sel.className = "relabel"; sel.setAttribute("aria-label", "relabel as");
    for (const k of ["", ...Object.keys(COLORS)]) {
      const o = document.createElement("option"); o.value = k; o.textContent = k || "relabel…"; sel.appendChild(o);
    }
    tools.appendChild(sel);
    jump.onclick = (ev) => { ev.preventDefault(); focusEvent(e); };
    tr.querySelector(".accept").onclick = () => review({action: "accept", event: e.key});
    tr.querySelector(".reject").onclick = () => review({action: "reject", event: e.key});
    sel.onchange = (ev) => ev.target.value && review({action: "relabel", event: e.key, kind: ev.target.value});
    return tr;
  }
  function scrollToSelected() {
    const i = list.shown.findIndex((e) => e.key === selected);
    const box = $("event-box");
    if (i >= 0 && (i * ROW_H < box.scrollTop || (i + 1) * ROW_H > box.scrollTop + box.clientHeight)) box.scrollTop = Math.max(0, i * ROW_H - box.clientHeight / 2);
    renderRows();
  }

  async function review(body) {
    const note = $("review-note").value.trim();
    if (note && body.action !== "undo") body.note = note;
    let d;
    try {
      d = await json(`${api}/review`, {method: "POST", headers: {"Content-Type": "application/json", "X-CSRF-Token": CSRF}, body: JSON.stringify(body)});
    } catch (err) { $("review-status").textContent = `Not saved: ${err.message}`; return; }
    if (body.action !== "undo") undoStack.push(d.review.event);
    $("review-note").value = "";
    $("undo").disabled = !undoStack.length;
    $("review-status").textContent = `${body.action === "undo" ? "Undone" : "Saved"}: ${body.action} ${body.kind || ""} at ${clock((meta.events.find((e) => e.key === d.review.event) || {start_s: body.start_s || 0}).start_s, false)}`;
    meta.events = d.events;
    refilter();
    plots.forEach((p) => p.u.redraw(false));
    drawOverview();
  }
  function undo() { const k = undoStack.pop(); if (k) review({action: "undo", event: k}); }

  function focusEvent(e) {
    selected = e.key; pos = e.start_s;
    scrollToSelected();
    const pad = Math.max(5, (e.end_s - e.start_s) * 0.5);
    return setView(e.start_s - pad, e.end_s + pad);
  }
  function jump(dir, kind) {  // from the current position, through the events the list shows
    const evs = kind ? list.all.filter((e) => e.kind === kind && e.status !== "rejected") : list.shown;
    const next = dir > 0 ? evs.find((e) => e.start_s > pos + 0.01) : [...evs].reverse().find((e) => e.start_s < pos - 0.01);
    if (next) return focusEvent(next);
    $("review-status").textContent = `No ${kind ? kind.replace("_", " ") : "event"} ${dir > 0 ? "after" : "before"} ${clock(pos, false)}`;
  }
  const selectedEvent = () => meta.events.find((e) => e.key === selected);

  function proposeEvent(a, b, p) {
    const form = $("add-event");
    form.start_s.value = a.toFixed(1); form.end_s.value = b.toFixed(1);
    if (p && p.label.match(/^EMG ([LR])/)) form.side.value = p.label[4] === "L" ? "left" : "right";
    showAddClock();
    form.kind.focus();
  }
  function showAddClock() {
    const form = $("add-event"), a = parseFloat(form.start_s.value), b = parseFloat(form.end_s.value);
    $("add-clock").textContent = isFinite(a) && isFinite(b) ? `${clock(a, true)} – ${clock(b, true)} ${TZ}` : "";
  }

  // ---------------------------------------------------------------- montage
  let saveTimer = null;
  function saveMontage() {
    clearTimeout(saveTimer);
    root.dataset.montageSaved = "pending";  // "yes" only once the latest montage is stored
    saveTimer = setTimeout(() => {
      fetch("/api/prefs/montage", {method: "PUT", headers: {"Content-Type": "application/json", "X-CSRF-Token": CSRF},
        body: JSON.stringify(montage)}).then((r) => { root.dataset.montageSaved = r.ok ? "yes" : "no"; });
    }, 300);
  }
  function arrange() {
    const charts = $("charts");
    const order = (l) => { const i = montage.order.indexOf(l); return i < 0 ? 1000 + plots.findIndex((p) => p.label === l) : i; };
    plots.sort((a, b) => order(a.label) - order(b.label));
    for (const p of plots) {
      charts.appendChild(p.el);
      p.el.hidden = montage.hidden.includes(p.label);
      p.el.classList.toggle("focus", p.label === focusChan);
      const g = montage.gain[p.label];
      p.el.querySelector(".gain").value = g ? String(g) : "";
    }
    const ul = $("montage-list");
    ul.replaceChildren();
    for (const p of plots) {
      const li = document.createElement("li"); li.dataset.channel = p.label;
      const cb = document.createElement("input"); cb.type = "checkbox"; cb.checked = !p.el.hidden; cb.id = `show-${p.label}`;
      const lab = document.createElement("label"); lab.htmlFor = cb.id; lab.textContent = p.label;
      const up = document.createElement("button"); up.type = "button"; up.textContent = "↑"; up.className = "up"; up.title = `move ${p.label} up`;
      const dn = document.createElement("button"); dn.type = "button"; dn.textContent = "↓"; dn.className = "down"; dn.title = `move ${p.label} down`;
      cb.onchange = () => {
        montage.hidden = montage.hidden.filter((l) => l !== p.label).concat(cb.checked ? [] : [p.label]);
        saveMontage(); arrange(); load();
      };
      const move = (d) => {
        const labels = plots.map((q) => q.label), i = labels.indexOf(p.label), j = i + d;
        if (j < 0 || j >= labels.length) return;
        [labels[i], labels[j]] = [labels[j], labels[i]];
        montage.order = labels; saveMontage(); arrange(); plots.forEach((q) => q.u.redraw(false));
      };
      up.onclick = () => move(-1); dn.onclick = () => move(1);
      li.append(cb, " ", lab, " ", up, dn);
      ul.appendChild(li);
    }
  }
  function setGain(p, g) {
    if (g) montage.gain[p.label] = g; else delete montage.gain[p.label];
    p.el.querySelector(".gain").value = g ? String(g) : "";
    p.u.redraw(true, true);
    p.u.setScale("y", {min: p.u.scales.y.min, max: p.u.scales.y.max});
    saveMontage();
  }
  function stepGain(dir) {  // ↑ more sensitive (fewer units per division), ↓ less
    const targets = focusChan ? plots.filter((p) => p.label === focusChan) : plots.filter((p) => p.kind === "emg");
    for (const p of targets) {
      const steps = GAINS[p.unit]; if (!steps) continue;
      const cur = montage.gain[p.label];
      let i = cur ? steps.indexOf(cur) : -1;
      if (i < 0) {  // from automatic: the step nearest the range now drawn
        const span = (p.u.scales.y.max - p.u.scales.y.min) / DIVS;
        i = steps.findIndex((s) => s >= span); if (i < 0) i = steps.length - 1;
      }
      setGain(p, steps[Math.max(0, Math.min(steps.length - 1, i - dir))]);
    }
    load();
  }

  function legend() {
    const ul = $("legend");
    for (const [k, c] of Object.entries(COLORS)) {
      const li = document.createElement("li"); const sw = document.createElement("span");
      sw.className = "swatch"; sw.style.background = c; li.append(sw, " " + k.replace("_", " ")); ul.appendChild(li);
    }
    for (const [cls, text] of [["band", "EMG/ACC: lowest–highest value per pixel"], ["env", "envelope (mean |EMG|), when shown"],
      ["hyp-w", "awake (overview)"], ["hyp-s", "asleep (overview)"]]) {
      const li = document.createElement("li"); const sw = document.createElement("span");
      sw.className = `swatch ${cls}`; li.append(sw, " " + text); ul.appendChild(li);
    }
  }

  async function init() {
    meta = await json(`${api}/meta`);
    start = new Date(meta.recording.start);
    duration = meta.recording.duration_s;
    base = start.getTime() / 1000 + tzOffset(start);
    const chans = meta.recording.channels.map((c) => [c.label, c.kind === "emg" ? "µV" : "g", c.kind]);
    for (const side of ["L", "R"]) {  // movement of each leg: the largest accelerometer-axis range
      if (meta.recording.channels.some((c) => c.kind === "acc" && c.label.startsWith(`ACC ${side}-`))) chans.push([`activity ${side}`, "g", "activity"]);
    }
    chans.push(["sleep/wake", "wake", "hypnogram"]);
    const charts = $("charts");
    for (const [label, unit, kind] of chans) {
      const el = document.createElement("div");
      el.className = "chan"; el.dataset.channel = label;
      const head = document.createElement("div"); head.className = "chan-head";
      const name = document.createElement("button"); name.type = "button"; name.className = "chan-name"; name.textContent = label;
      name.title = "select this channel: ↑ ↓ change its gain";
      const gain = document.createElement("select"); gain.className = "gain"; gain.setAttribute("aria-label", `${label} gain`);
      const auto = document.createElement("option"); auto.value = ""; auto.textContent = "auto scale"; gain.appendChild(auto);
      for (const g of GAINS[unit] || []) { const o = document.createElement("option"); o.value = String(g); o.textContent = `${g} ${unit}/div`; gain.appendChild(o); }
      if (!GAINS[unit]) gain.hidden = true;
      const f = document.createElement("span"); f.className = "filt";
      head.append(name, " ", gain, " ", f);
      const plot = document.createElement("div"); plot.className = "plot";
      el.append(head, plot);
      charts.appendChild(el);
      const p = {label, unit, kind, el};
      p.u = makePlot(p);
      plots.push(p);
      name.onclick = () => { focusChan = focusChan === label ? null : label; plots.forEach((q) => q.el.classList.toggle("focus", q.label === focusChan)); };
      gain.onchange = () => { setGain(p, parseFloat(gain.value) || null); load(); };
    }
    arrange(); legend();
    const quality = (meta.summary && meta.summary.signal_quality) || {};
    const hz = [...new Set(Object.values(quality).filter((q) => q.kind === "emg" && q.mains_hz).map((q) => q.mains_hz))];
    $("notch").textContent = hz.length ? `notch at the detected mains: ${hz.join(", ")} Hz` : "no mains hum detected: no notch";
    $("filter").value = montage.filter;
    $("filter").onchange = () => { montage.filter = $("filter").value; saveMontage(); load(); };
    $("envelope").checked = !!montage.envelope;
    $("envelope").onchange = () => { montage.envelope = $("envelope").checked; saveMontage(); load(); };
    $("window").onchange = () => $("window").value !== "custom" && setWindow($("window").value);
    $("whole").onclick = () => setView(0, duration);
    $("zoom-in").onclick = () => zoom(0.25);
    $("zoom-out").onclick = () => zoom(4);
    $("page-back").onclick = () => page(-1);
    $("page-on").onclick = () => page(1);
    $("next-event").onclick = () => jump(1);
    $("prev-event").onclick = () => jump(-1);
    $("next-cramp").onclick = () => jump(1, "cramp");
    $("undo").onclick = undo;
    for (const id of ["f-kind", "f-side", "f-status"]) $(id).onchange = () => { $("event-box").scrollTop = 0; refilter(); };
    $("event-box").addEventListener("scroll", () => requestAnimationFrame(renderRows));
    $("overview").onclick = (ev) => {
      const r = $("overview").getBoundingClientRect(), t = (ev.clientX - r.left) / r.width * duration;
      pos = t;
      const span = view[1] - view[0] >= duration - 1e-6 ? (montage.window_s || EPOCH) : view[1] - view[0];
      const a = span >= EPOCH ? Math.floor(t / EPOCH) * EPOCH : t - span / 2;
      setView(a, a + span);
    };
    document.addEventListener("keydown", (ev) => {
      if (ev.target.closest("input, select, textarea")) { if (ev.key === "Escape") ev.target.blur(); return; }
      if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
      const e = selectedEvent();
      const k = {n: () => jump(1), p: () => jump(-1), c: () => jump(1, "cramp"),
        PageDown: () => page(1), PageUp: () => page(-1), ArrowLeft: () => pan(-0.5), ArrowRight: () => pan(0.5),
        ArrowUp: () => stepGain(1), ArrowDown: () => stepGain(-1),
        "+": () => zoom(0.5), "=": () => zoom(0.5), "-": () => zoom(2), Home: () => setView(0, duration),
        a: () => e && review({action: "accept", event: e.key}), r: () => e && review({action: "reject", event: e.key}),
        l: () => { const s = document.querySelector(`#events tr.selected select.relabel`); if (s) s.focus(); },
        u: undo, "#": () => $("review-note").focus()}[ev.key];
      if (k) { ev.preventDefault(); k(); }
    });
    const form = $("add-event");
    form.start_s.oninput = form.end_s.oninput = showAddClock;
    form.onsubmit = (ev) => {
      ev.preventDefault();
      plots.forEach((p) => p.u.setSelect({left: 0, width: 0}, false));
      review({action: "add", kind: form.kind.value, side: form.side.value || null,
        start_s: parseFloat(form.start_s.value), end_s: parseFloat(form.end_s.value)});
    };
    addEventListener("resize", () => { plots.forEach((p) => p.u.setSize({width: Math.max(300, p.el.clientWidth), height: p.u.height})); drawOverview(); });
    refilter();
    view = [0, duration];
    if (montage.window_s && montage.window_s < duration) view = [0, montage.window_s];
    await setView(view[0], view[1]);
    form.start_s.value = view[0].toFixed(1);
  }
  init().catch((e) => {
    root.dataset.state = "error";
    const p = document.createElement("p"); p.className = "error"; p.setAttribute("role", "alert"); p.textContent = e.message;
    root.prepend(p);
  });
})();

// The dashboard of `backprop serve`: one page, four views (runs, a run, a batch, the GPUs),
// kept live by server-sent events (or by polling when those fail). Everything the store holds
// is shown through textContent, never parsed as markup: names and logs are arbitrary text.
"use strict";

// ---------------------------------------------------------------------------------------------
// The token: from the address `backprop serve` printed, then kept for this tab only and taken
// out of the address bar (so it is not bookmarked or shown on screen).

const TOKEN = (() => {
  const params = new URLSearchParams(location.search);
  const given = params.get("token");
  if (given) {
    sessionStorage.setItem("backprop-token", given);
    history.replaceState(null, "", location.pathname + location.hash);
    return given;
  }
  return sessionStorage.getItem("backprop-token") || "";
})();

const STATUSES = ["queued", "running", "paused", "completed", "failed", "timeboxed", "stopped", "rejected", "lost"];
const ACTIVE = new Set(["queued", "running", "paused"]);
const FIRST_PAGE = 100;

async function api(path, options = {}) {
  const response = await fetch(path, {
    method: options.method || "GET",
    headers: { Authorization: "Bearer " + TOKEN },
    cache: "no-store",
  });
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (!response.ok) {
    const message = body && body.error ? body.error : response.status + " " + response.statusText;
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return body;
}

// ---------------------------------------------------------------------------------------------
// Small helpers for building the page.

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  return appendAll(node, children);
}

// Children as `el` takes them: nested lists flattened, null/undefined/false left out, other
// values as text.
function appendAll(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Replaces a node's children, taking them as `el` does.
function fill(node, ...children) {
  node.replaceChildren();
  return appendAll(node, children);
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attributes = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  return node;
}

function statusBadge(status) {
  const known = STATUSES.includes(status) || status === "pruned";
  // A status this page does not know yet is shown in a neutral colour.
  return el("span", { class: "status" + (known ? " status-" + status : ""), "data-status": status, text: status });
}

function durationText(ms) {
  if (ms === null || ms === undefined) return "-";
  let s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (h) return h + "h " + m + "m";
  if (m) return m + "m " + s + "s";
  return s + "s";
}

function timeText(ms) {
  if (!ms) return "-";
  const d = new Date(ms);
  const two = (n) => String(n).padStart(2, "0");
  return d.getFullYear() + "-" + two(d.getMonth() + 1) + "-" + two(d.getDate()) + " " +
    two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds());
}

function numberText(v) {
  if (v === null || v === undefined) return "-";
  if (typeof v !== "number") return String(v);
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(3);
  return String(Number(v.toPrecision(4)));
}

function runLink(id) {
  return el("a", { href: "#/run/" + encodeURIComponent(id), text: id });
}

function batchLink(id) {
  return id ? el("a", { href: "#/batch/" + encodeURIComponent(id), text: id }) : "-";
}

function showNotice(message, kind) {
  const box = document.getElementById("notice");
  box.textContent = message;
  box.className = "notice" + (kind ? " " + kind : "");
  box.hidden = !message;
}

// ---------------------------------------------------------------------------------------------
// Charts: lines over x, drawn as SVG paths, with attempt boundaries and a log-scale option.

const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
  "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#393b79", "#637939"];

function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const fraction = raw / power;
  const nice = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10;
  return nice * power;
}

function ticks(lo, hi, count) {
  if (!(hi > lo)) return [lo];
  const step = niceStep(hi - lo, count);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

// series: [{label, points: [[x, y], ...], swatch}] where y may be null (a gap) and x going back
// starts a new line (a resumed attempt repeating steps). options: {log, boundaries, width,
// height, xLabel, xFormat, yMin, yMax}.
function lineChart(series, options = {}) {
  const width = options.width || 560, height = options.height || 260;
  const left = 58, right = 12, top = 10, bottom = 30;
  const root = svg("svg", { class: "plot", viewBox: `0 0 ${width} ${height}`, role: "img" });
  const usable = (y) => y !== null && Number.isFinite(y) && (!options.log || y > 0);
  let xs = [], ys = [];
  for (const s of series) for (const [x, y] of s.points) {
    if (x === null || !Number.isFinite(x)) continue;
    xs.push(x);
    if (usable(y)) ys.push(y);
  }
  if (!ys.length) {
    root.append(svg("text", { class: "empty", x: width / 2, y: height / 2, "text-anchor": "middle",
      text: options.log ? "no positive values to draw on a log scale" : "no values yet" }));
    return root;
  }
  let x0 = Math.min(...xs), x1 = Math.max(...xs);
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  let y0 = options.yMin !== undefined ? options.yMin : Math.min(...ys);
  let y1 = options.yMax !== undefined ? Math.max(options.yMax, Math.max(...ys)) : Math.max(...ys);
  const f = options.log ? Math.log10 : (v) => v;
  let fy0 = f(y0), fy1 = f(y1);
  if (fy0 === fy1) { fy0 -= options.log ? 0.5 : Math.abs(fy0) * 0.1 || 1; fy1 += options.log ? 0.5 : Math.abs(fy1) * 0.1 || 1; }
  const pad = (fy1 - fy0) * 0.04;
  if (options.yMin === undefined) fy0 -= pad;
  fy1 += pad;
  const px = (x) => left + (x - x0) / (x1 - x0) * (width - left - right);
  const py = (y) => top + (1 - (f(y) - fy0) / (fy1 - fy0)) * (height - top - bottom);

  // Grid and y labels.
  const yTicks = options.log
    ? ticks(Math.floor(fy0), Math.ceil(fy1), 6).filter((e) => Number.isInteger(e) && e >= fy0 && e <= fy1).map((e) => Math.pow(10, e))
    : ticks(fy0, fy1, 5);
  for (const t of yTicks) {
    const y = py(t);
    root.append(svg("line", { class: "grid", x1: left, x2: width - right, y1: y, y2: y }));
    root.append(svg("text", { x: left - 6, y: y + 4, "text-anchor": "end", text: numberText(t) }));
  }
  for (const t of ticks(x0, x1, 6)) {
    const x = px(t);
    root.append(svg("line", { class: "axis", x1: x, x2: x, y1: height - bottom, y2: height - bottom + 4 }));
    root.append(svg("text", { x, y: height - bottom + 16, "text-anchor": "middle",
      text: options.xFormat ? options.xFormat(t) : numberText(t) }));
  }
  root.append(svg("line", { class: "axis", x1: left, x2: width - right, y1: height - bottom, y2: height - bottom }));
  root.append(svg("line", { class: "axis", x1: left, x2: left, y1: top, y2: height - bottom }));
  if (options.xLabel) {
    root.append(svg("text", { x: width - right, y: height - 2, "text-anchor": "end", text: options.xLabel }));
  }

  // Attempt boundaries: a dashed line where attempts 2, 3, ... begin.
  for (const b of options.boundaries || []) {
    const x = px(b.x);
    root.append(svg("line", { class: "boundary", x1: x, x2: x, y1: top, y2: height - bottom }));
    root.append(svg("text", { class: "boundary", x: x + 3, y: top + 10, text: "attempt " + b.attempt }));
  }

  series.forEach((s, i) => {
    let d = "", pen = false, lastX = -Infinity;
    for (const [x, y] of s.points) {
      if (x === null || !Number.isFinite(x) || !usable(y)) { pen = false; continue; }
      if (x < lastX) pen = false;
      d += (pen ? "L" : "M") + px(x).toFixed(1) + " " + py(y).toFixed(1);
      pen = true; lastX = x;
    }
    if (!d) return;
    const colour = PALETTE[(s.swatch !== undefined ? s.swatch : i) % PALETTE.length];
    const path = svg("path", { class: "series", d, stroke: colour });
    path.append(svg("title", { text: s.label || "" }));
    root.append(path);
  });
  return root;
}

function chartBox(title, chart, legend) {
  return el("div", { class: "chart" }, el("h3", { text: title }), chart, legend || null);
}

function legendOf(series) {
  return el("div", { class: "legend" },
    series.map((s, i) => el("span", { class: "swatch-" + ((s.swatch !== undefined ? s.swatch : i) % PALETTE.length), text: s.label })));
}

// ---------------------------------------------------------------------------------------------
// Live updates: server-sent events, or polling when the browser cannot keep them open.

const live = { source: null, mode: "connecting", failures: 0, pollTimer: null, listeners: new Set() };

function setLive(mode, text) {
  live.mode = mode;
  const badge = document.getElementById("live");
  badge.className = "live " + mode;
  badge.textContent = text;
}

function connectEvents() {
  if (!TOKEN || typeof EventSource === "undefined") { startPolling(); return; }
  const source = new EventSource("/api/events?token=" + encodeURIComponent(TOKEN));
  live.source = source;
  source.onopen = () => { live.failures = 0; stopPolling(); setLive("on", "live"); };
  source.onerror = () => {
    live.failures += 1;
    // EventSource retries by itself; after repeated failures the page polls meanwhile.
    if (live.failures >= 3 || source.readyState === EventSource.CLOSED) startPolling();
    if (source.readyState === EventSource.CLOSED) {
      source.close();
      setTimeout(connectEvents, 5000);
    }
  };
  source.addEventListener("runs", (e) => dispatch({ kind: "runs", data: JSON.parse(e.data) }));
  source.addEventListener("gpu", (e) => dispatch({ kind: "gpu", data: JSON.parse(e.data) }));
  source.addEventListener("reload", () => dispatch({ kind: "reload" }));
}

function startPolling() {
  if (live.pollTimer) return;
  setLive("polling", "polling");
  live.pollTimer = setInterval(() => dispatch({ kind: "poll" }), 1000);
}

function stopPolling() {
  if (live.pollTimer) clearInterval(live.pollTimer);
  live.pollTimer = null;
}

function dispatch(event) {
  for (const listener of live.listeners) {
    try { listener(event); } catch (e) { console.error(e); }
  }
}

// ---------------------------------------------------------------------------------------------
// Views. Each returns a function that stops it (its timers and listeners).

let stopView = () => {};

function route() {
  stopView();
  showNotice("");
  const main = document.getElementById("view");
  fill(main);
  const hash = decodeURIComponent(location.hash.replace(/^#\/?/, ""));
  const [kind, ...rest] = hash.split("/");
  const id = rest.join("/");
  document.getElementById("nav-runs").className = kind === "gpus" ? "" : "active";
  document.getElementById("nav-gpus").className = kind === "gpus" ? "active" : "";
  if (!TOKEN) {
    main.append(el("p", { text: "This page needs the address `backprop serve` printed, with its ?token=… part." }));
    return;
  }
  const view = kind === "run" && id ? runView(main, id)
    : kind === "batch" && id ? batchView(main, id)
    : kind === "gpus" ? gpuView(main)
    : tableView(main);
  stopView = () => { live.listeners.delete(view.listener); view.stop && view.stop(); };
  live.listeners.add(view.listener);
}

// Runs whose rows come from events change a record in place; a record's own fields win over
// a change's older ones only where the change does not speak.
function mergeChange(record, change) {
  for (const key of ["name", "status", "batchId", "createdTime", "startTime", "endTime", "activeMs", "lastStep", "lastLoss"]) {
    if (key in change) record[key] = change[key];
  }
  return record;
}

function actionButtons(run, after) {
  const buttons = [];
  if (ACTIVE.has(run.status)) {
    buttons.push(el("button", { class: "danger", "data-action": "stop", text: "Stop", onclick: async (e) => {
      e.preventDefault(); e.target.disabled = true;
      try { await api("/api/runs/" + encodeURIComponent(run.id) + "/stop", { method: "POST" }); showNotice("asked run " + run.id + " to stop", "info"); }
      catch (err) { showNotice(err.message); e.target.disabled = false; }
      after && after();
    } }));
  } else if (STATUSES.includes(run.status) && run.status !== "rejected") {
    buttons.push(el("button", { "data-action": "resume", text: run.status === "completed" ? "Run again" : "Resume", onclick: async (e) => {
      e.preventDefault(); e.target.disabled = true;
      const force = run.status === "completed" ? "?force=true" : "";
      try { await api("/api/runs/" + encodeURIComponent(run.id) + "/resume" + force, { method: "POST" }); showNotice("started backprop resume " + run.id, "info"); }
      catch (err) { showNotice(err.message); e.target.disabled = false; }
      after && after();
    } }));
  }
  return buttons;
}

function tableView(main) {
  const filters = { status: "", name: "", batch: "", limit: FIRST_PAGE };
  const rows = new Map();
  let records = [];
  const statusSelect = el("select", { id: "filter-status" },
    el("option", { value: "", text: "any" }), [...STATUSES, "pruned"].map((s) => el("option", { value: s, text: s })));
  const nameInput = el("input", { type: "text", id: "filter-name", placeholder: "name or id (glob: lr0.1-*)" });
  const batchInput = el("input", { type: "text", id: "filter-batch", placeholder: "batch id" });
  const tbody = el("tbody");
  const count = el("div", { class: "count" });
  const more = el("button", { text: "Show more", hidden: true, onclick: () => { filters.limit *= 10; load(); } });
  main.append(
    el("h1", { text: "Runs" }),
    el("div", { class: "filters" },
      el("label", {}, "status", statusSelect),
      el("label", {}, "name", nameInput),
      el("label", {}, "batch", batchInput)),
    el("table", { id: "runs" },
      el("thead", {}, el("tr", {},
        ["ID", "Name", "Status", "Batch", "Step", "Loss", "Active", "Started", ""].map((h, i) =>
          el("th", { class: i === 4 || i === 5 || i === 6 ? "num" : "", text: h })))),
      tbody),
    count, more);

  let typing = null;
  const changed = () => {
    filters.status = statusSelect.value;
    filters.name = nameInput.value.trim();
    filters.batch = batchInput.value.trim();
    filters.limit = FIRST_PAGE;
    clearTimeout(typing);
    typing = setTimeout(load, 200);
  };
  statusSelect.addEventListener("change", changed);
  nameInput.addEventListener("input", changed);
  batchInput.addEventListener("input", changed);

  function query() {
    const q = new URLSearchParams({ limit: String(filters.limit) });
    if (filters.status) q.set("status", filters.status);
    if (filters.batch) q.set("batch", filters.batch);
    if (filters.name) q.set("name", /[*?[]/.test(filters.name) ? filters.name : "*" + filters.name + "*");
    return q.toString();
  }

  function matches(run) {
    if (filters.status && run.status !== filters.status) return false;
    if (filters.batch && run.batchId !== filters.batch) return false;
    return true;
  }

  function row(run) {
    return el("tr", { "data-id": run.id, "data-status": run.status },
      el("td", {}, runLink(run.id)),
      el("td", { text: run.name || "" }),
      el("td", {}, statusBadge(run.status)),
      el("td", {}, batchLink(run.batchId)),
      el("td", { class: "num", text: run.lastStep ?? "-" }),
      el("td", { class: "num", text: numberText(run.lastLoss) }),
      el("td", { class: "num", text: durationText(run.activeMs) }),
      el("td", { text: timeText(run.startTime) }),
      el("td", {}, actionButtons(run)));
  }

  function render() {
    fill(tbody);
    rows.clear();
    for (const run of records) {
      const tr = row(run);
      rows.set(run.id, tr);
      tbody.append(tr);
    }
    count.textContent = records.length
      ? (records.length >= filters.limit ? "the newest " + records.length + " runs" : records.length + " run" + (records.length === 1 ? "" : "s"))
      : (filters.status || filters.name || filters.batch ? "no runs match" : "no runs yet; start one with: backprop run examples/train.py");
    more.hidden = records.length < filters.limit;
  }

  async function load() {
    try {
      records = await api("/api/runs?" + query());
      render();
    } catch (e) { showNotice(e.message); }
  }

  load();
  return {
    listener(event) {
      if (event.kind === "reload" || event.kind === "poll") { load(); return; }
      if (event.kind !== "runs") return;
      let added = false;
      for (const change of event.data) {
        const known = records.find((r) => r.id === change.id);
        if (known) {
          mergeChange(known, change);
          const tr = rows.get(change.id);
          if (!matches(known)) { records = records.filter((r) => r !== known); tr && tr.remove(); rows.delete(change.id); continue; }
          const fresh = row(known);
          if (tr) tr.replaceWith(fresh);
          rows.set(change.id, fresh);
        } else if (!filters.name && matches(change)) {
          // A new run: newest first, so it goes on top.
          records.unshift(mergeChange({ id: change.id }, change));
          added = true;
        } else if (filters.name) {
          added = true; // the server knows the glob; ask it
        }
      }
      if (added) { if (filters.name) load(); else render(); }
    },
  };
}

// --- One run ---------------------------------------------------------------------------------

function runView(main, id) {
  const path = "/api/runs/" + encodeURIComponent(id);
  const state = { record: null, names: [], series: new Map(), log: false, stream: "stdout", busy: false, timer: null, stopped: false };
  const title = el("h1", {}, el("span", { text: id }));
  const facts = el("dl", { class: "facts panel" });
  const logToggle = el("input", { type: "checkbox", id: "log-scale" });
  const charts = el("div", { class: "charts", id: "charts" });
  const attempts = el("div");
  const checkpoints = el("div");
  const streamSelect = el("select", { id: "log-stream" }, el("option", { value: "stdout", text: "stdout" }), el("option", { value: "stderr", text: "stderr" }));
  const logBox = el("pre", { class: "log", id: "log" });
  main.append(title, facts,
    el("h2", {}, "Metrics "), el("div", { class: "row" }, el("label", {}, logToggle, " log scale")), charts,
    el("h2", { text: "Attempts" }), attempts,
    el("h2", { text: "Checkpoints" }), checkpoints,
    el("h2", {}, el("span", { class: "row" }, "Log ", streamSelect, el("span", { class: "muted", id: "log-follow", text: "" }))), logBox);
  logToggle.addEventListener("change", () => { state.log = logToggle.checked; drawCharts(); });
  streamSelect.addEventListener("change", () => { state.stream = streamSelect.value; loadLog(); });

  function renderRecord() {
    const r = state.record;
    fill(title, el("span", { text: r.name || r.id }), statusBadge(r.status), actionButtons(r, refresh));
    const spec = r.spec || {};
    const command = [spec.interpreter, spec.program, ...(spec.args || [])].filter(Boolean).join(" ");
    const fact = (k, v) => [el("dt", { text: k }), el("dd", {}, v)];
    fill(facts,
      ...fact("id", r.id),
      ...fact("status", r.status + (r.reason ? " (" + r.reason + ")" : "")),
      ...fact("command", command || r.scriptPath || "-"),
      ...fact("cwd", spec.cwd || "-"),
      ...fact("batch", batchLink(r.batchId)),
      ...fact("params", r.params ? JSON.stringify(r.params) : "-"),
      ...fact("step", String(r.lastStep ?? "-")),
      ...fact("loss", numberText(r.lastLoss)),
      ...fact("active", durationText(r.activeMs) + (spec.options && spec.options.maxRun ? " of " + durationText(spec.options.maxRun * 1000) : "")),
      ...fact("started", timeText(r.startTime)),
      ...fact("ended", timeText(r.endTime)),
      ...(r.slurm ? fact("slurm job", r.slurm.jobId + " " + (r.slurm.state || "?")) : []));
    fill(attempts, el("table", { id: "attempts" },
      el("thead", {}, el("tr", {}, ["#", "Status", "Reason", "Exit", "Started", "Ended", "Active", "Step", "Loss", "GPUs", "Resumed from"].map((h) => el("th", { text: h })))),
      el("tbody", {}, (r.attempts || []).map((a) => el("tr", {},
        el("td", { text: a.number }),
        el("td", {}, a.status ? statusBadge(a.status) : "-"),
        el("td", { class: "reason", text: a.reason || "" }),
        el("td", { text: a.exitCode ?? (a.signal ? "signal " + a.signal : "-") }),
        el("td", { text: timeText(a.startTime) }),
        el("td", { text: timeText(a.endTime) }),
        el("td", { class: "num", text: durationText(a.activeMs) }),
        el("td", { class: "num", text: a.lastStep ?? "-" }),
        el("td", { class: "num", text: numberText(a.lastLoss) }),
        el("td", { text: (a.gpus || []).join(",") || "-" }),
        el("td", { text: a.resumedFrom || "-" }))))));
    const list = r.checkpoints || [];
    fill(checkpoints, list.length
      ? el("ol", { id: "checkpoints" }, list.map((c) => el("li", { text: c + (c === r.lastCheckpoint ? "  (latest)" : "") })))
      : el("p", { class: "muted", text: "none yet" }));
  }

  // Points arrive from a byte offset on: a followed run reads only what it appended.
  async function loadSeries(name) {
    let s = state.series.get(name);
    if (!s) { s = { offset: 0, points: [], lastStep: null }; state.series.set(name, s); }
    for (let rounds = 0; rounds < 20; rounds++) {
      const chunk = await api(path + "/metrics?name=" + encodeURIComponent(name) + "&offset=" + s.offset);
      if (chunk.from !== s.offset) { s.points = []; s.lastStep = null; }
      for (const p of chunk.points) {
        const step = p.step ?? s.lastStep;
        s.lastStep = step;
        s.points.push({ step, value: p.value, attempt: p.attempt });
      }
      s.offset = chunk.nextOffset;
      if (!chunk.more) break;
    }
  }

  async function loadMetrics() {
    const { names } = await api(path + "/metrics");
    state.names = names.includes("loss") ? ["loss", ...names.filter((n) => n !== "loss")] : names;
    for (const name of state.names) await loadSeries(name);
    drawCharts();
  }

  function drawCharts() {
    if (!state.names.length) {
      fill(charts, el("p", { class: "muted", text: "no metrics reported yet" }));
      return;
    }
    fill(charts, ...state.names.map((name) => {
      const s = state.series.get(name) || { points: [] };
      const boundaries = [];
      let attempt = null;
      for (const p of s.points) {
        if (attempt !== null && p.attempt !== null && p.attempt > attempt && p.step !== null) boundaries.push({ x: p.step, attempt: p.attempt });
        if (p.attempt !== null) attempt = Math.max(attempt ?? 0, p.attempt);
      }
      const chart = lineChart([{ label: name, points: s.points.map((p) => [p.step, p.value]) }],
        { log: state.log, boundaries, xLabel: "step" });
      chart.setAttribute("data-metric", name);
      return chartBox(name, chart);
    }));
  }

  async function loadLog() {
    try {
      const tail = await api(path + "/logs?stream=" + state.stream + "&tail=300");
      const atBottom = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 8;
      logBox.textContent = tail.lines.length ? tail.lines.join("\n") : "(nothing written yet)";
      if (atBottom) logBox.scrollTop = logBox.scrollHeight;
    } catch (e) { showNotice(e.message); }
  }

  async function refresh() {
    if (state.busy || state.stopped) return;
    state.busy = true;
    try {
      state.record = await api(path);
      renderRecord();
      await loadMetrics();
      await loadLog();
      document.getElementById("log-follow").textContent = ACTIVE.has(state.record.status) ? "following" : "";
    } catch (e) {
      showNotice(e.message);
    } finally {
      state.busy = false;
    }
  }

  refresh();
  // The log grows between progress writes: while the run is active it is read every second.
  state.timer = setInterval(() => {
    if (state.record && ACTIVE.has(state.record.status) && !state.busy) loadLog();
  }, 1000);
  return {
    stop() { state.stopped = true; clearInterval(state.timer); },
    listener(event) {
      if (event.kind === "poll" || event.kind === "reload" || (event.kind === "runs" && event.data.some((c) => c.id === id))) refresh();
    },
  };
}

// --- One batch -------------------------------------------------------------------------------

function batchView(main, id) {
  const state = { runs: [], log: false, stopped: false, busy: false, series: new Map() };
  const stopButton = el("button", { class: "danger", id: "stop-batch", text: "Stop the batch", onclick: async () => {
    stopButton.disabled = true;
    try { await api("/api/batches/" + encodeURIComponent(id) + "/stop", { method: "POST" }); showNotice("asked batch " + id + " to stop", "info"); }
    catch (e) { showNotice(e.message); }
    stopButton.disabled = false;
  } });
  const logToggle = el("input", { type: "checkbox", id: "log-scale" });
  const table = el("div");
  const rungs = el("div");
  const charts = el("div", { class: "charts", id: "charts" });
  main.append(el("h1", {}, el("span", { text: "Batch " + id }), stopButton),
    table, rungs,
    el("h2", { text: "Metrics, best run first" }), el("div", { class: "row" }, el("label", {}, logToggle, " log scale")), charts);
  logToggle.addEventListener("change", () => { state.log = logToggle.checked; drawCharts(); });

  const OVERLAID = 12;
  const byLoss = (a, b) => (a.lastLoss ?? Infinity) - (b.lastLoss ?? Infinity) || String(a.id).localeCompare(String(b.id));

  function renderTable() {
    const runs = state.runs;
    const active = runs.filter((r) => ACTIVE.has(r.status)).length;
    stopButton.hidden = active === 0;
    fill(table,
      el("p", { class: "count", text: runs.length + " runs, " + active + " active" }),
      el("table", { id: "batch-runs" },
        el("thead", {}, el("tr", {}, ["#", "Run", "Name", "Status", "Params", "Step", "Loss", "Active"].map((h) => el("th", { text: h })))),
        el("tbody", {}, runs.map((r, i) => el("tr", { "data-id": r.id },
          el("td", {}, el("span", { class: "legend" }, el("span", { class: "swatch-" + (i % PALETTE.length), text: String(i + 1) }))),
          el("td", {}, runLink(r.id)),
          el("td", { text: r.name || "" }),
          el("td", {}, statusBadge(r.status)),
          el("td", { text: r.params ? Object.entries(r.params).map(([k, v]) => k + "=" + v).join(" ") : "" }),
          el("td", { class: "num", text: r.lastStep ?? "-" }),
          el("td", { class: "num", text: numberText(r.lastLoss) }),
          el("td", { class: "num", text: durationText(r.activeMs) }))))));
    renderRungs();
  }

  // An adaptive search keeps, on each run's record under `search`, the search's spec and the
  // run's own part: its start position, its metric at each rung it finished, how far it was
  // promoted and how it left the search.
  function renderRungs() {
    const searched = state.runs.filter((r) => r.search && typeof r.search === "object" && r.search.run);
    if (!searched.length) { fill(rungs); return; }
    const spec = searched[0].search.spec || {};
    const part = (r) => r.search.run;
    const rungCount = Math.max(0, ...searched.map((r) => (part(r).rungs || []).reduce((m, g) => Math.max(m, (g.rung ?? 0) + 1), 0)));
    const rungNumbers = Array.from({ length: rungCount }, (_, i) => i);
    const ordered = [...searched].sort((a, b) => (part(a).position ?? 1e9) - (part(b).position ?? 1e9));
    const title = "Search rungs" + (spec.metric ? " (" + spec.metric + (spec.mode ? ", " + spec.mode : "") + ")" : "");
    fill(rungs, el("h2", { text: title }), el("table", { id: "rungs" },
      el("thead", {}, el("tr", {}, ["Position", "Run", "Status", ...rungNumbers.map((n) => "Rung " + n), "Promoted to", "End"].map((h) => el("th", { text: h })))),
      el("tbody", {}, ordered.map((r) => {
        const s = part(r);
        const byRung = new Map((s.rungs || []).map((g) => [g.rung, g]));
        return el("tr", { "data-id": r.id },
          el("td", { class: "num", text: s.position ?? "-" }),
          el("td", {}, runLink(r.id)),
          el("td", {}, statusBadge(r.status), s.started === false ? el("span", { class: "muted", text: " not started" }) : null),
          rungNumbers.map((n) => {
            const g = byRung.get(n);
            return el("td", { class: "num", text: g ? numberText(g.metric) + " @" + (g.step ?? "-") + (g.activeMs ? " (" + durationText(g.activeMs) + ")" : "") : "" });
          }),
          el("td", { class: "num", text: s.promotedTo ?? "-" }),
          el("td", {}, s.end ? statusBadge(s.end) : "-"));
      }))));
  }

  async function loadSeries(run, name) {
    const key = run.id + "\u0000" + name;
    let s = state.series.get(key);
    if (!s) { s = { offset: 0, points: [], lastStep: null }; state.series.set(key, s); }
    const chunk = await api("/api/runs/" + encodeURIComponent(run.id) + "/metrics?name=" + encodeURIComponent(name) + "&offset=" + s.offset);
    if (chunk.from !== s.offset) { s.points = []; s.lastStep = null; }
    for (const p of chunk.points) { s.lastStep = p.step ?? s.lastStep; s.points.push([s.lastStep, p.value]); }
    s.offset = chunk.nextOffset;
    return s;
  }

  function metricNames(runs) {
    const names = new Set();
    for (const r of runs) {
      if (r.lastLoss !== null && r.lastLoss !== undefined) names.add("loss");
      for (const k of Object.keys(r.metrics || {})) if (!["step", "time", "attempt"].includes(k)) names.add(k);
    }
    return names.has("loss") ? ["loss", ...[...names].filter((n) => n !== "loss").sort()] : [...names].sort();
  }

  async function drawCharts() {
    const runs = state.runs.slice(0, OVERLAID);
    const names = metricNames(runs);
    if (!names.length) { fill(charts, el("p", { class: "muted", text: "no metrics reported yet" })); return; }
    const boxes = [];
    for (const name of names) {
      const series = [];
      for (let i = 0; i < runs.length; i++) {
        const s = await loadSeries(runs[i], name);
        series.push({ label: runs[i].name || runs[i].id, points: s.points, swatch: i });
      }
      const chart = lineChart(series, { log: state.log, xLabel: "step" });
      chart.setAttribute("data-metric", name);
      boxes.push(chartBox(name, chart, legendOf(series)));
    }
    fill(charts, ...boxes);
    if (state.runs.length > OVERLAID) charts.append(el("p", { class: "muted", text: "the best " + OVERLAID + " of " + state.runs.length + " runs are drawn" }));
  }

  async function refresh() {
    if (state.busy || state.stopped) return;
    state.busy = true;
    try {
      const runs = await api("/api/runs?batch=" + encodeURIComponent(id) + "&limit=10000");
      if (!runs.length) { showNotice("no runs in batch " + id); }
      state.runs = runs.sort(byLoss);
      renderTable();
      await drawCharts();
    } catch (e) { showNotice(e.message); }
    finally { state.busy = false; }
  }

  refresh();
  return {
    stop() { state.stopped = true; },
    listener(event) {
      if (event.kind === "poll" || event.kind === "reload" || (event.kind === "runs" && event.data.some((c) => c.batchId === id))) refresh();
    },
  };
}

// --- The GPUs --------------------------------------------------------------------------------

function gpuView(main) {
  const state = { samples: [], status: null, everyMs: 2000, stopped: false, lastStatus: 0 };
  const summary = el("div", { class: "panel", id: "machine" });
  const cards = el("div", { class: "gpus", id: "gpus" });
  main.append(el("h1", { text: "GPUs" }), summary, el("h2", { text: "Each GPU over the last minutes" }), cards);

  // Tick labels relative to the latest sample: seconds over a short history, else minutes.
  const ago = (now, spanMs) => (t) => {
    const s = (t - now) / 1000;
    if (Math.abs(s) < 0.05) return "now";
    if (spanMs < 20000) return s.toFixed(1) + "s";
    return spanMs < 180000 ? Math.round(s) + "s" : (s / 60).toFixed(Math.round(s) % 60 === 0 ? 0 : 1) + "m";
  };

  function render() {
    const latest = state.samples[state.samples.length - 1];
    const status = state.status;
    const probe = status ? status.gpuProbe : null;
    fill(summary,
      el("div", { class: "row" },
        el("span", {}, "CPU load ", el("b", { text: latest ? latest.loadPerCore.toFixed(2) : "-" }), " per core"),
        el("span", {}, "RAM free ", el("b", { text: latest ? latest.freeRamGB.toFixed(1) + " GB" : "-" })),
        el("span", {}, "probe ", el("b", { text: probe ? probe.kind : "-" })),
        status && status.startBlockedBy ? el("span", { class: "failure", text: "new runs would wait: " + status.startBlockedBy }) : null),
      probe && probe.error ? el("p", { class: "failure", text: "GPU probe error: " + probe.error }) : null,
      probe && probe.note ? el("p", { class: "muted", text: probe.note }) : null);
    const gpus = latest ? latest.gpus : [];
    if (!gpus.length) {
      fill(cards, el("p", { class: "muted", text: "No GPUs found; runs use the CPU." }));
      return;
    }
    const now = latest.time;
    const holders = new Map(((status && status.gpus) || []).map((g) => [g.index, g.runs || []]));
    fill(cards, ...gpus.map((g) => {
      const history = (field) => state.samples.map((s) => {
        const one = s.gpus.find((x) => x.index === g.index);
        return [s.time, one ? one[field] : null];
      });
      const mini = (title, points, options) => chartBox(title,
        lineChart([{ label: title, points }], Object.assign({ width: 260, height: 150, xFormat: ago(now, now - (state.samples[0] ? state.samples[0].time : now)) }, options)));
      const total = g.memoryTotalMb;
      const runs = holders.get(g.index) || [];
      return el("div", { class: "panel gpu", "data-gpu": g.index },
        el("h3", { text: "GPU " + g.label + " · " + g.name }),
        el("div", { class: "now" },
          el("span", {}, "memory ", el("b", { text: g.memoryUsedMb !== null && total ? (g.memoryUsedMb / 1024).toFixed(1) + " / " + (total / 1024).toFixed(1) + " GB" : "N/A" })),
          el("span", {}, "temperature ", el("b", { text: g.temperatureC !== null ? g.temperatureC.toFixed(0) + " °C" : "N/A" })),
          el("span", {}, "utilisation ", el("b", { text: g.utilizationPct !== null ? g.utilizationPct.toFixed(0) + " %" : "N/A" }))),
        g.failure ? el("p", { class: "failure", text: "unusable: " + g.failure }) : null,
        el("div", { class: "mini" },
          mini("memory used (MB)", history("memoryUsedMb"), { yMin: 0, yMax: total || undefined }),
          mini("temperature (°C)", history("temperatureC"), {}),
          mini("utilisation (%)", history("utilizationPct"), { yMin: 0, yMax: 100 })),
        runs.length
          ? el("ul", { class: "holders" }, runs.map((h) => {
            const runId = h.split(" ")[0];
            return el("li", {}, runLink(runId), h.slice(runId.length));
          }))
          : el("p", { class: "muted", text: "no run holds or reserves it" }));
    }));
  }

  async function loadStatus() {
    state.lastStatus = Date.now();
    try { state.status = await api("/api/status"); render(); } catch (e) { showNotice(e.message); }
  }

  async function load() {
    try {
      const machine = await api("/api/machine");
      state.samples = machine.samples;
      state.everyMs = machine.everyMs;
      await loadStatus();
    } catch (e) { showNotice(e.message); }
  }

  load();
  return {
    stop() { state.stopped = true; },
    listener(event) {
      if (event.kind === "gpu") {
        state.samples.push(event.data);
        if (state.samples.length > 300) state.samples.shift();
        if (Date.now() - state.lastStatus > 10000) loadStatus(); else render();
      } else if (event.kind === "runs") {
        loadStatus();
      } else if (event.kind === "poll" && Date.now() - state.lastStatus > 2000) {
        load();
      }
    },
  };
}

window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", () => { route(); connectEvents(); });

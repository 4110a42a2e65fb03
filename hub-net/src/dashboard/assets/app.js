// The dashboard page: renders each view the server pushes (one per
// second) and keeps the last minutes of rates for the plots. Everything
// shown comes from /dashboard/stream; nothing is fetched from elsewhere.
"use strict";

const HISTORY = 300; // samples kept for the plots (5 minutes at 1/s)
const $ = (sel) => document.querySelector(sel);
const state = {
  history: [],     // {t, starts, calls, latency, children: {node: n}}
  prev: null,      // previous view's totals per node, for rates
  peak: 0,         // most misplaced children since moves last reached 0
  lastSeq: 0,
  epoch: null,     // which run of the serving node numbers the log lines
  colors: new Map(),
};

// Distinct colours, given to nodes in the order the page first sees
// them (sorted by id within one view), so a node keeps its colour.
const PALETTE = ["#3b7dd8", "#e07b39", "#1a9c5b", "#c2449b", "#8a5cd0", "#c9a227",
  "#2bb3c0", "#d23f3f", "#6b8e23", "#7a6a58", "#5a6fd6", "#e05d84"];

function color(node) {
  if (!state.colors.has(node)) {
    const n = state.colors.size;
    const extra = Math.floor(n / PALETTE.length);
    // Past the palette, the same hues again, darker.
    const base = PALETTE[n % PALETTE.length];
    state.colors.set(node, extra ? `color-mix(in srgb, ${base} ${100 - 25 * Math.min(extra, 3)}%, black)` : base);
  }
  return state.colors.get(node);
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "style") e.style.cssText = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

const fmt = (n) => Number(n).toLocaleString("en-US");
const pct = (f) => (f * 100).toFixed(1) + "%";

// ----- the ring ----------------------------------------------------------

function arcPath(from, to, r0, r1) {
  const a0 = from * 2 * Math.PI - Math.PI / 2;
  const a1 = to * 2 * Math.PI - Math.PI / 2;
  const large = to - from > 0.5 ? 1 : 0;
  const p = (r, a) => `${(r * Math.cos(a)).toFixed(3)} ${(r * Math.sin(a)).toFixed(3)}`;
  return `M ${p(r1, a0)} A ${r1} ${r1} 0 ${large} 1 ${p(r1, a1)} L ${p(r0, a1)} A ${r0} ${r0} 0 ${large} 0 ${p(r0, a0)} Z`;
}

function renderRing(view) {
  const svg = $("#ring");
  const ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  for (const arc of view.ring) {
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", arcPath(arc.from, arc.to, 70, 100));
    path.setAttribute("fill", color(arc.node));
    path.setAttribute("data-node", arc.node);
    const title = document.createElementNS(ns, "title");
    title.textContent = `${arc.node}: ${pct(arc.to - arc.from)} of the ring`;
    path.append(title);
    svg.append(path);
  }
  const label = document.createElementNS(ns, "text");
  label.setAttribute("text-anchor", "middle");
  label.setAttribute("dy", "6");
  label.setAttribute("font-size", "18");
  label.textContent = `${view.ring.length ? new Set(view.ring.map((a) => a.node)).size : 0} nodes`;
  svg.append(label);
  const legend = $("#ring-legend");
  legend.replaceChildren(
    ...view.nodes
      .filter((n) => n.share > 0)
      .map((n) => el("li", { style: `--c: ${color(n.id)}` }, `${n.id} ${pct(n.share)}`)),
  );
}

// ----- nodes ---------------------------------------------------------------

function inFlight(report) {
  const u = report && report.status.unsettled;
  if (!u) return report ? "settled" : "";
  const parts = [];
  for (const k of ["outbound", "handing", "orphans", "busy", "misplaced", "replicas_missing"]) {
    if (u[k]) parts.push(`${u[k]} ${k.replace("_", " ")}`);
  }
  if (u.locked) parts.push("locked");
  return parts.join(", ") || "settling";
}

function renderNodes(view) {
  const body = $("#nodes tbody");
  const rows = view.nodes.map((n) => {
    const r = n.report;
    const gone = n.status === "down" || n.status === "left";
    const quorum = r ? (r.status.partitioned ? "lost" : "held") : "";
    const t = r && r.totals;
    const strict = r && r.strict ? `${t.strict_grants} granted · ${t.strict_fencings} fenced` : "";
    const tags = Object.entries(n.tags || {}).map(([k, v]) => `${k}=${v}`).join(" ");
    const action = el("button", { class: "danger", title: `drain ${n.id} and take it out` }, "decommission");
    action.disabled = gone;
    action.addEventListener("click", () => decommission(n.id));
    const status = el("td", { class: "status" }, el("span", { class: `st-${n.status}` }, n.status));
    if (n.unreachable && !gone) status.title = n.unreachable;
    return el(
      "tr",
      { "data-node": n.id, "data-status": n.status, class: gone ? "gone" : "" },
      el("td", {}, el("b", { style: `color: ${color(n.id)}` }, n.id), n.id === view.served_by ? " (here)" : ""),
      status,
      el("td", { class: "num children" }, fmt(n.children)),
      el("td", { class: "num" }, pct(n.share)),
      el("td", { class: "quorum" }, quorum),
      el("td", { class: "num" }, r ? r.status.connections : ""),
      el("td", { class: "flight" }, r ? inFlight(r) : n.unreachable || ""),
      el("td", {}, strict),
      el("td", {}, tags),
      el("td", {}, action),
    );
  });
  body.replaceChildren(...rows);
}

// ----- moves, kinds ----------------------------------------------------

function renderMoves(view) {
  $("#moves-misplaced").textContent = fmt(view.misplaced);
  $("#moves-waiting").textContent = fmt(view.waiting);
  if (view.misplaced === 0) state.peak = 0;
  state.peak = Math.max(state.peak, view.misplaced);
  const done = state.peak ? 1 - view.misplaced / state.peak : 1;
  $("#moves-bar").style.width = state.peak ? pct(done) : "0%";
  const handing = view.nodes.reduce((s, n) => {
    const u = n.report && n.report.status.unsettled;
    return s + (u ? u.outbound + u.handing : 0);
  }, 0);
  $("#moves-text").textContent = state.peak
    ? `${pct(done)} of ${fmt(state.peak)} moves done; ${fmt(handing)} handoffs in flight`
    : "nothing moving";
}

function renderKinds(view) {
  const nodes = view.nodes.map((n) => n.id);
  $("#kinds thead").replaceChildren(
    el("tr", {}, el("th", {}, "kind"), el("th", { class: "num" }, "total"),
      ...nodes.map((n) => el("th", { class: "num" }, n))),
  );
  $("#kinds tbody").replaceChildren(
    ...view.kinds.map((k) =>
      el("tr", { "data-kind": k.kind }, el("td", {}, k.kind), el("td", { class: "num total" }, fmt(k.total)),
        ...nodes.map((n) => el("td", { class: "num", "data-node": n }, fmt(k.per_node[n] || 0))))),
  );
}

// ----- plots ---------------------------------------------------------------

function sample(view) {
  const now = view.at_ms;
  const totals = {};
  for (const n of view.nodes) if (n.report) totals[n.id] = n.report.totals;
  const children = {};
  for (const n of view.nodes) if (n.status !== "left") children[n.id] = n.children;
  if (state.prev && now > state.prev.t) {
    const dt = (now - state.prev.t) / 1000;
    let starts = 0, calls = 0, secs = 0;
    for (const [id, t] of Object.entries(totals)) {
      const p = state.prev.totals[id];
      if (!p) continue;
      // A restarted node's totals begin again at 0: count from there.
      starts += Math.max(0, t.started - p.started);
      const dc = t.calls - p.calls;
      if (dc > 0) { calls += dc; secs += t.call_seconds - p.call_seconds; }
    }
    state.history.push({ t: now, starts: starts / dt, calls: calls / dt, latency: calls ? (secs / calls) * 1000 : null, children });
    if (state.history.length > HISTORY) state.history.shift();
  }
  state.prev = { t: now, totals };
}

function axisLabel(v) {
  if (v >= 1e6) return (v / 1e6).toPrecision(2) + "M";
  if (v >= 1e3) return (v / 1e3).toPrecision(2) + "k";
  return String(Number(v.toPrecision(2)));
}

function plot(canvas, series) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 28;
  ctx.clearRect(0, 0, w, h);
  const pts = series.flatMap((s) => s.points).filter((p) => p.v !== null);
  if (!pts.length) {
    ctx.fillStyle = "#6b7385";
    ctx.fillText("no data yet", w / 2 - 28, h / 2);
    return;
  }
  const t0 = Math.min(...pts.map((p) => p.t)), t1 = Math.max(...pts.map((p) => p.t), t0 + 1);
  const vmax = Math.max(...pts.map((p) => p.v), 1) * 1.1;
  ctx.strokeStyle = "#e3e6ec";
  ctx.fillStyle = "#6b7385";
  ctx.font = "10px sans-serif";
  for (let i = 0; i <= 2; i++) {
    const y = h - pad / 2 - ((h - pad) * i) / 2;
    ctx.beginPath(); ctx.moveTo(pad, y); ctx.lineTo(w, y); ctx.stroke();
    ctx.fillText(axisLabel((vmax * i) / 2), 0, y + 3);
  }
  for (const s of series) {
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let pen = false;
    for (const p of s.points) {
      if (p.v === null) { pen = false; continue; }
      const x = pad + ((w - pad) * (p.t - t0)) / (t1 - t0);
      const y = h - pad / 2 - ((h - pad) * p.v) / vmax;
      if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      pen = true;
    }
    ctx.stroke();
  }
}

function renderPlots() {
  const hist = state.history;
  const one = (key, c) => [{ color: c, points: hist.map((s) => ({ t: s.t, v: s[key] })) }];
  plot($("#plot-starts"), one("starts", "#3b7dd8"));
  plot($("#plot-calls"), one("calls", "#1a9c5b"));
  plot($("#plot-latency"), one("latency", "#d99a00"));
  const nodes = new Set(hist.flatMap((s) => Object.keys(s.children)));
  plot($("#plot-children"), [...nodes].map((n) => ({
    color: color(n),
    points: hist.map((s) => ({ t: s.t, v: n in s.children ? s.children[n] : null })),
  })));
}

// ----- log -----------------------------------------------------------------

function logVisible(li) {
  const cats = new Set([...document.querySelectorAll("#log-filters input[type=checkbox]:checked")].map((c) => c.value));
  const text = $("#log-text").value.trim().toLowerCase();
  return cats.has(li.dataset.category) && (!text || li.textContent.toLowerCase().includes(text));
}

function logLine(category, atMs, text) {
  const log = $("#log");
  const at = new Date(atMs).toLocaleTimeString();
  const li = el("li", { "data-category": category }, el("span", { class: "cat" }, category), `${at}  ${text}`);
  li.classList.toggle("hidden", !logVisible(li));
  log.prepend(li);
  while (log.children.length > 1000) log.lastChild.remove();
}

function addLines({ epoch, lines }) {
  if (state.epoch !== null && epoch !== state.epoch) {
    // The serving node restarted: its lines are numbered from 1 again.
    state.lastSeq = 0;
    logLine("membership", Date.now(), "the serving node restarted: its event log starts again");
  }
  state.epoch = epoch;
  for (const l of lines) {
    if (l.seq <= state.lastSeq) continue;
    state.lastSeq = l.seq;
    logLine(l.category, l.at_ms, l.text);
  }
}

function refilter() {
  for (const li of $("#log").children) li.classList.toggle("hidden", !logVisible(li));
}

// ----- search and actions ------------------------------------------------

async function findChild(ev) {
  ev.preventDefault();
  const id = $("#search-id").value.trim();
  const out = $("#child-result");
  if (!id) {
    out.textContent = "type a child id";
    return;
  }
  out.textContent = "looking…";
  try {
    const r = await fetch(`/dashboard/child?id=${encodeURIComponent(id)}`);
    const c = await r.json();
    if (c.error) {
      out.textContent = c.error;
      return;
    }
    if (!c.found) {
      out.replaceChildren(el("p", {}, c.waiting ? `${id} is known but waits for an owner` : `no child ${id} in the registry`));
      return;
    }
    const dl = el("dl", {});
    const row = (k, v) => dl.append(el("dt", {}, k), el("dd", {}, v));
    row("id", c.id);
    row("kind", c.kind);
    for (const copy of c.copies) {
      const what = copy.error ? copy.error : `${copy.role || "starting"}, ${copy.restarts} restarts`;
      row(copy.active ? "runs on (active)" : "runs on", `${copy.node}: ${what}`);
    }
    if (!c.copies.length) row("runs on", "nowhere yet");
    row("restart policy", c.restart);
    const md = Object.entries(c.metadata || {}).map(([k, v]) => `${k}=${v}`).join(", ");
    row("metadata", md || "none");
    out.replaceChildren(dl);
  } catch (e) {
    out.textContent = `lookup failed: ${e}`;
  }
}

function decommission(node) {
  const dialog = $("#confirm");
  $("#confirm-text").textContent =
    `Decommission ${node}? It hands its children over and leaves the cluster.`;
  dialog.onclose = async () => {
    if (dialog.returnValue !== "ok") return;
    const token = $("#token").value;
    const r = await fetch(`/dashboard/decommission?node=${encodeURIComponent(node)}`, {
      method: "POST",
      headers: token ? { Authorization: `Bearer ${token}` } : {},
    });
    if (!r.ok) {
      const body = await r.json().catch(() => ({}));
      logLine("refusals", Date.now(), `decommission of ${node} refused: ${body.error || r.status}`);
    }
  };
  dialog.showModal();
}

// ----- the stream ----------------------------------------------------------

function render(view) {
  for (const id of view.nodes.map((n) => n.id).sort()) color(id);
  $("#hub-id").textContent = view.hub_id;
  $("#served-by").textContent = view.served_by;
  for (const e of document.querySelectorAll(".served-by-name")) e.textContent = view.served_by;
  $("#summary-children").textContent = fmt(view.children);
  $("#summary-nodes").textContent = new Set(view.ring.map((a) => a.node)).size;
  const settled = view.nodes.every((n) => !n.report || n.report.status.settled) && view.misplaced === 0;
  const badge = $("#summary-settled");
  badge.textContent = settled ? "settled" : "moving";
  badge.className = `badge ${settled ? "ok" : "busy"}`;
  const live = $("#live");
  live.textContent = `updated ${new Date(view.at_ms).toLocaleTimeString()}`;
  live.className = "live on";
  renderRing(view);
  renderNodes(view);
  renderMoves(view);
  renderKinds(view);
  sample(view);
  renderPlots();
  document.body.dataset.updated = String(view.at_ms);
}

function connect() {
  const es = new EventSource(`/dashboard/stream?since=${state.lastSeq}`);
  es.addEventListener("view", (e) => render(JSON.parse(e.data)));
  es.addEventListener("log", (e) => addLines(JSON.parse(e.data)));
  es.addEventListener("trouble", (e) => { $("#live").textContent = `trouble: ${e.data}`; });
  es.onerror = () => {
    const live = $("#live");
    live.className = "live off";
    live.textContent = "reconnecting…";
  };
}

$("#search").addEventListener("submit", findChild);
$("#log-filters").addEventListener("input", refilter);
$("#token").value = sessionStorage.getItem("hub-token") || "";
$("#token").addEventListener("change", (e) => sessionStorage.setItem("hub-token", e.target.value));
connect();

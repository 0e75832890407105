"""The dashboard's page: one HTML document, styles and script inline (no CDN, works offline)."""

PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>polybus dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px system-ui,sans-serif;margin:1.5rem;color:#1d2330;background:#fafbfc}
h1{font-size:1.3rem;margin:0 0 .3rem}h2{font-size:1.05rem;margin:1.5rem 0 .5rem}
table{border-collapse:collapse;background:#fff;min-width:60%}
th,td{padding:.3rem .6rem;border-bottom:1px solid #e3e6ea;text-align:right}
th:first-child,td:first-child{text-align:left}
th{background:#eef1f5;font-weight:600}
.muted{color:#6b7380}.warn{color:#b3261e;font-weight:600}
button{margin:0 .15rem;padding:.15rem .5rem;cursor:pointer}
#notes div{margin:.2rem 0}.ok{color:#1b7a36}
pre{background:#fff;border:1px solid #e3e6ea;padding:.5rem;max-height:20rem;overflow:auto}
#flow svg{background:#fff;border:1px solid #e3e6ea}
.node rect{fill:#eef1f5;stroke:#8a94a6;rx:6}.node[data-kind=topic] rect{fill:#fff4d6;stroke:#c9a227}
.node[data-kind=subscription] rect{fill:#e3f1e6;stroke:#4f9a65}
.node text{font:12px system-ui,sans-serif;fill:#1d2330}.node text.sub{fill:#6b7380;font-size:11px}
.edge{fill:none;stroke:#9aa3b2}.edge.failing{stroke:#b3261e}.edge-label{font:11px system-ui;fill:#6b7380}
#traces tr{cursor:pointer}#traces tr.selected td{background:#e8f0fe}
#waterfall{background:#fff;border:1px solid #e3e6ea;padding:.4rem;margin-top:.5rem}
.wf-row{display:flex;align-items:center;height:22px;border-bottom:1px solid #f0f2f5}
.wf-label{width:34%;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;font-size:12px}
.wf-track{position:relative;flex:1;height:14px}
.wf-bar{position:absolute;top:0;height:14px;min-width:2px;border-radius:2px;background:#8a94a6}
.wf-bar.k-PRODUCER{background:#c9a227}.wf-bar.k-CONSUMER{background:#4f9a65}
.wf-bar.k-CLIENT{background:#5b7bd5}.wf-bar.k-INTERNAL{background:#8a94a6}.wf-bar.err{background:#b3261e}
.wf-tick{position:absolute;top:-2px;width:2px;height:18px;background:#1d2330}
.wf-time{position:absolute;top:0;font-size:11px;color:#6b7380;white-space:nowrap}
</style></head>
<body data-polls="0">
<h1>polybus dashboard</h1>
<div class="muted">provider <b id="provider">?</b>; refreshed every second; <span id="updated"></span></div>
<div id="notes"></div>
<h2>Subscriptions</h2>
<table id="subs"><thead><tr><th>subscription</th><th>backlog</th><th>in flight</th>
<th>oldest age</th><th>dead letters</th><th>throughput</th><th>error rate</th>
<th>retries</th><th>p50</th><th>p99</th><th></th></tr></thead><tbody></tbody></table>
<section id="flow-view" hidden>
<h2>Flow</h2>
<div id="flow-notes"></div>
<div class="muted">publisher service &rarr; topic &rarr; subscription (its service); edges count the spans seen</div>
<div id="flow"></div>
<h2>Latest traces</h2>
<table id="traces"><thead><tr><th>root span</th><th>service</th><th>services</th><th>spans</th>
<th>duration</th></tr></thead><tbody></tbody></table>
<div id="waterfall" hidden><div class="muted" id="wf-title"></div><div id="wf-rows"></div></div>
</section>
<section id="dlq" hidden>
<h2>Dead letters of <span id="dlq-sub"></span></h2>
<div>requeue to topic <input id="dlq-topic" size="24">
<button id="requeue-all">Requeue all</button><button id="purge-all">Purge all</button>
<button id="dlq-refresh">Refresh</button> <span id="dlq-status" class="muted"></span></div>
<table id="letters"><thead><tr><th>id</th><th>type</th><th>attempt</th><th>reason</th><th></th>
</tr></thead><tbody></tbody></table>
<pre id="dlq-event" hidden></pre>
</section>
<script>
"use strict";
const $ = (s) => document.querySelector(s);
let current = null;
function fmt(v, unit) {
  if (v === null || v === undefined) return "\u2013";
  if (unit === "s") return v < 1 ? (v * 1000).toFixed(1) + " ms" : v.toFixed(2) + " s";
  if (unit === "%") return (v * 100).toFixed(1) + "%";
  if (unit === "/s") return v.toFixed(2) + "/s";
  if (unit === "age") return v.toFixed(1) + " s";
  return String(v);
}
function cell(tr, key, text, cls) {
  const td = document.createElement("td");
  td.dataset.k = key; td.textContent = text; if (cls) td.className = cls; tr.appendChild(td);
  return td;
}
function render(state) {
  $("#provider").textContent = state.provider;
  $("#updated").textContent = new Date(state.at * 1000).toLocaleTimeString();
  const notes = $("#notes"); notes.textContent = "";
  if (state.backlog_note) { const d = document.createElement("div"); d.className = "warn"; d.textContent = state.backlog_note; notes.appendChild(d); }
  for (const s of state.sources) {
    const d = document.createElement("div"); d.className = s.error ? "warn" : "ok";
    d.textContent = "metrics " + s.url + (s.error ? ": " + s.error : ": ok"); notes.appendChild(d);
  }
  const body = $("#subs tbody"); body.textContent = "";
  for (const sub of state.subscriptions) {
    const tr = document.createElement("tr"); tr.dataset.sub = sub.name;
    const b = sub.backlog || {}; const r = sub.rates || {};
    cell(tr, "name", sub.name);
    if (sub.backlog_error) { const td = cell(tr, "undelivered", "error", "warn"); td.title = sub.backlog_error; }
    else cell(tr, "undelivered", fmt(b.undelivered));
    cell(tr, "in_flight", fmt(b.in_flight));
    cell(tr, "oldest_age", fmt(b.oldest_age, "age"));
    cell(tr, "dead_letters", fmt(b.dead_letters), b.dead_letters > 0 ? "warn" : "");
    cell(tr, "throughput", fmt(r.throughput, "/s"));
    cell(tr, "error_rate", fmt(r.error_rate, "%"), r.error_rate > 0.05 ? "warn" : "");
    cell(tr, "retry_rate", fmt(r.retry_rate, "/s"));
    cell(tr, "p50", fmt(r.p50, "s")); cell(tr, "p99", fmt(r.p99, "s"));
    const td = document.createElement("td"); const btn = document.createElement("button");
    btn.textContent = "dead letters"; btn.className = "open-dlq";
    btn.onclick = () => openDlq(sub.name, sub.topic); td.appendChild(btn); tr.appendChild(td);
    body.appendChild(tr);
  }
  document.body.dataset.polls = String(Number(document.body.dataset.polls) + 1);
}
async function poll() {
  try { const r = await fetch("/api/state"); if (r.ok) render(await r.json()); }
  catch (e) { $("#updated").textContent = "unreachable: " + e; }
  setTimeout(poll, 1000);
}
function status(text, cls) { const s = $("#dlq-status"); s.textContent = text; s.className = cls || "muted"; }
async function openDlq(name, topic) {
  current = name; $("#dlq").hidden = false; $("#dlq-sub").textContent = name;
  $("#dlq-topic").value = topic; $("#dlq-event").hidden = true; await loadDlq();
}
async function loadDlq() {
  status("loading\u2026"); document.body.removeAttribute("data-dlq-loaded");
  const r = await fetch("/api/dlq?subscription=" + encodeURIComponent(current));
  const doc = await r.json();
  if (!r.ok) { status(doc.error, "warn"); return; }
  const body = $("#letters tbody"); body.textContent = "";
  for (const d of doc) {
    const tr = document.createElement("tr"); tr.dataset.id = d.id;
    cell(tr, "id", d.id); cell(tr, "type", d.type); cell(tr, "attempt", String(d.attempt));
    cell(tr, "reason", d.reason || "\u2013");
    const td = document.createElement("td");
    for (const [label, fn] of [["show", () => show(d.id)], ["requeue", () => act("requeue", [d.id])], ["purge", () => act("purge", [d.id])]]) {
      const b = document.createElement("button"); b.textContent = label; b.className = label; b.onclick = fn; td.appendChild(b);
    }
    tr.appendChild(td); body.appendChild(tr);
  }
  status(doc.length + " dead letter(s)"); document.body.dataset.dlqLoaded = String(doc.length);
}
async function show(id) {
  const r = await fetch("/api/dlq/show?subscription=" + encodeURIComponent(current) + "&id=" + encodeURIComponent(id));
  const pre = $("#dlq-event"); pre.hidden = false; pre.textContent = JSON.stringify(await r.json(), null, 2);
}
async function act(action, ids) {
  if (action === "purge" && !confirm("Delete " + (ids ? ids.length : "all") + " dead letter(s) of " + current + " for good?")) return;
  status(action + "\u2026");
  const r = await fetch("/api/dlq/" + action, {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({subscription: current, topic: $("#dlq-topic").value, ids: ids})});
  const doc = await r.json();
  if (!r.ok) { status(action + " failed: " + doc.error, "warn"); return; }
  await loadDlq();
  const skipped = doc.skipped.map((s) => s[0] + " (" + s[1] + ")").join(", ");
  status(action + "d " + doc.done.length + (skipped ? "; skipped " + skipped : ""), "ok");
  document.body.dataset.lastAction = action + ":" + doc.done.join(",");
}
const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, parent) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (parent) parent.appendChild(el); return el;
}
function renderFlow(graph) {
  const notes = $("#flow-notes"); notes.textContent = "";
  for (const n of graph.notes) { const d = document.createElement("div"); d.className = "warn"; d.textContent = n; notes.appendChild(d); }
  const cols = {service: 0, topic: 1, subscription: 2}; const count = [0, 0, 0]; const pos = {};
  const W = 220, H = 40, GAP = 14, X = [20, 340, 660];
  for (const n of graph.nodes) { const c = cols[n.kind]; pos[n.id] = {x: X[c], y: 20 + count[c] * (H + GAP)}; count[c] += 1; }
  const height = 40 + Math.max(1, ...count) * (H + GAP);
  const root = svg("svg", {width: 900, height: height, viewBox: "0 0 900 " + height});
  for (const e of graph.edges) {
    const a = pos[e.from], b = pos[e.to]; if (!a || !b) continue;
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mx = (x1 + x2) / 2;
    const path = svg("path", {d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`,
      "stroke-width": 1 + Math.min(5, Math.log2(1 + e.count)), class: "edge" + (e.errors ? " failing" : "")}, root);
    path.dataset.from = e.from; path.dataset.to = e.to; path.dataset.count = e.count;
    const into = e.to.startsWith("topic:");  // label at the service / subscription end, not the busy topic
    const label = svg("text", {x: into ? x1 + 6 : x2 - 6, y: (into ? y1 : y2) - 4,
      "text-anchor": into ? "start" : "end", class: "edge-label"}, root);
    label.textContent = e.count + (e.errors ? " (" + e.errors + " failed)" : "");
  }
  for (const n of graph.nodes) {
    const p = pos[n.id]; const g = svg("g", {class: "node", transform: `translate(${p.x},${p.y})`}, root);
    g.dataset.kind = n.kind; g.dataset.name = n.name; if (n.service) g.dataset.service = n.service;
    svg("rect", {width: W, height: H, rx: 6}, g);
    const t = svg("text", {x: 10, y: n.service && n.kind === "subscription" ? 17 : 25}, g); t.textContent = n.name;
    if (n.service && n.kind === "subscription") { const s2 = svg("text", {x: 10, y: 32, class: "sub"}, g); s2.textContent = "service " + n.service; }
  }
  const box = $("#flow"); box.textContent = ""; box.appendChild(root);
}
let selected = null;
function renderTraces(traces) {
  const body = $("#traces tbody"); body.textContent = "";
  for (const t of traces) {
    const tr = document.createElement("tr"); tr.dataset.trace = t.trace_id;
    if (t.trace_id === selected) tr.className = "selected";
    cell(tr, "root", t.root); cell(tr, "service", t.service); cell(tr, "services", String(t.services.length));
    cell(tr, "spans", String(t.spans)); cell(tr, "duration", t.duration_ms.toFixed(2) + " ms");
    tr.onclick = () => openTrace(t.trace_id); body.appendChild(tr);
  }
}
let asked = 0;
async function openTrace(id) {
  selected = id; const mine = ++asked;
  for (const tr of document.querySelectorAll("#traces tr[data-trace]")) tr.className = tr.dataset.trace === id ? "selected" : "";
  const r = await fetch("/api/trace?id=" + encodeURIComponent(id)); const doc = await r.json();
  if (mine !== asked) return;  // another trace was asked for meanwhile: draw only the latest
  const box = $("#wf-rows"); box.textContent = ""; const total = doc.total_ms || 1;
  $("#wf-title").textContent = "trace " + doc.trace_id + ": " + doc.rows.length + " spans, " + total.toFixed(2) + " ms";
  for (const row of doc.rows) {
    const div = document.createElement("div"); div.className = "wf-row";
    div.dataset.span = row.span_id; div.dataset.parent = row.parent_span_id || ""; div.dataset.depth = row.depth;
    const label = document.createElement("div"); label.className = "wf-label"; label.style.paddingLeft = (row.depth * 14) + "px";
    label.textContent = row.name; label.title = row.kind + " \u00b7 " + row.service;
    const svc = document.createElement("span"); svc.className = "muted"; svc.textContent = " " + row.service; label.appendChild(svc);
    const track = document.createElement("div"); track.className = "wf-track";
    const bar = document.createElement("div"); bar.className = "wf-bar k-" + row.kind + (row.error ? " err" : "");
    const left = row.offset_ms / total * 100; bar.style.left = left + "%"; bar.style.width = Math.max(0.3, row.duration_ms / total * 100) + "%";
    bar.title = row.name + ": " + row.duration_ms.toFixed(3) + " ms at +" + row.offset_ms.toFixed(3) + " ms"; track.appendChild(bar);
    for (const ev of row.events) {
      const tick = document.createElement("div"); tick.className = "wf-tick"; tick.title = ev.name;
      tick.dataset.event = ev.name; tick.style.left = (ev.offset_ms / total * 100) + "%"; track.appendChild(tick);
    }
    const time = document.createElement("span"); time.className = "wf-time"; time.textContent = row.duration_ms.toFixed(2) + " ms";
    const right = left + row.duration_ms / total * 100;
    if (right > 85) time.style.right = "calc(" + (100 - left) + "% + 4px)"; else time.style.left = "calc(" + right + "% + 4px)";
    track.appendChild(time);
    div.appendChild(label); div.appendChild(track); box.appendChild(div);
  }
  $("#waterfall").hidden = false; document.body.dataset.waterfall = id;
}
async function pollFlow() {
  try {
    const r = await fetch("/api/flow"); const graph = await r.json();
    if (graph.tracing) {
      $("#flow-view").hidden = false; renderFlow(graph);
      const t = await fetch("/api/traces"); const traces = await t.json(); renderTraces(traces);
      if (selected === null && traces.length) openTrace(traces[0].trace_id);  // the newest, until one is picked
      document.body.dataset.flowPolls = String(Number(document.body.dataset.flowPolls || 0) + 1);
    }
  } catch (e) { /* the state poll shows the server as unreachable */ }
  setTimeout(pollFlow, 2000);
}
$("#requeue-all").onclick = () => act("requeue", null);
$("#purge-all").onclick = () => act("purge", null);
$("#dlq-refresh").onclick = () => loadDlq();
poll();
pollFlow();
</script></body></html>
"""

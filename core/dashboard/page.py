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
</style></head>
<body data-polls="0">
<h1>polybus dashboard</h1>
<div class="muted">provider <b id="provider">?</b>; refreshed every second; <span id="updated"></span></div>
<div id="notes"></div>
<h2>Subscriptions</h2>
<table id="subs"><thead><tr><th>subscription</th><th>backlog</th><th>in flight</th>
<th>oldest age</th><th>dead letters</th><th>throughput</th><th>error rate</th>
<th>retries</th><th>p50</th><th>p99</th><th></th></tr></thead><tbody></tbody></table>
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
$("#requeue-all").onclick = () => act("requeue", null);
$("#purge-all").onclick = () => act("purge", null);
$("#dlq-refresh").onclick = () => loadDlq();
poll();
</script></body></html>
"""

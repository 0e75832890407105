"""The lab's single page: controls, topology drawings, charts and exercises (inline CSS and script, no network)."""

from __future__ import annotations

from polybus.sim.report import RENDER_CHECK, STYLE

SCRIPT = r"""
var seq = 0, shown = 0, timer = null, info = null;
function $(id) { return document.getElementById(id); }
function el(tag, attrs, text) {
  var e = document.createElement(tag);
  Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
  if (text !== undefined) { e.textContent = text; }
  return e;
}
function post(path, body) {
  return fetch(path, {method: "POST", headers: {"Content-Type": "application/json"},
                      body: JSON.stringify(body)}).then(function (r) {
    return r.json().then(function (j) { if (!r.ok) { throw new Error(j.error || r.statusText); } return j; });
  });
}
function settings() {
  var s = {load: {}, workers: {}, provider: $("provider").value, fault: $("fault").value};
  document.querySelectorAll("input[data-flow]").forEach(function (i) { s.load[i.dataset.flow] = Number(i.value); });
  document.querySelectorAll("input[data-service]").forEach(function (i) { s.workers[i.dataset.service] = Number(i.value); });
  return s;
}
function schedule() { clearTimeout(timer); timer = setTimeout(rerun, 250); }
function rerun() {
  var mine = ++seq;
  $("status").textContent = "simulating…";
  document.body.setAttribute("data-busy", "1");
  post("/api/run", settings()).then(function (res) {
    if (mine < shown) { return; }
    shown = mine;
    $("diagrams").innerHTML = res.diagrams.join("");
    $("figures").innerHTML = res.figures.map(function (f) { return f.html; }).join("");
    $("tables").innerHTML = res.tables.join("");
    var ul = $("headline"); ul.innerHTML = "";
    res.headline.forEach(function (line) { ul.appendChild(el("li", {}, line)); });
    var engines = Object.keys(res.engines).map(function (k) { return k + ": " + res.engines[k]; }).join(", ");
    $("status").textContent = res.duration + " simulated s per replication, " + engines + "; " +
      res.wall_seconds + " s wall. " + res.confidence;
    polybusCheckCharts();
    if (mine === seq) { document.body.removeAttribute("data-busy"); }
    document.body.setAttribute("data-run", String(mine));
  }).catch(function (err) {
    $("status").textContent = "error: " + err.message;
    document.body.removeAttribute("data-busy");
  });
}
function slider(parent, label, attrs, show) {
  var row = el("label", {class: "control"});
  var name = el("span", {class: "name"}, label);
  var input = el("input", Object.assign({type: "range"}, attrs));
  var value = el("output", {}, show(Number(attrs.value)));
  input.addEventListener("input", function () { value.textContent = show(Number(input.value)); schedule(); });
  row.appendChild(name); row.appendChild(input); row.appendChild(value);
  parent.appendChild(row);
}
function exercises(items) {
  var box = $("exercises");
  if (!items.length) { box.appendChild(el("p", {}, "This scenario has no exercises.")); return; }
  items.forEach(function (ex, i) {
    var card = el("div", {class: "exercise", "data-index": String(i)});
    card.appendChild(el("p", {class: "question"}, (i + 1) + ". " + ex.question));
    card.appendChild(el("p", {class: "change"}, "change: " + JSON.stringify(ex.change) +
      " · topology " + ex.topology + " · metric " + ex.metric));
    var form = el("div", {class: "predict"});
    form.appendChild(el("span", {}, "Your prediction: the metric goes "));
    ["up", "same", "down"].forEach(function (d) {
      var l = el("label", {});
      var r = el("input", {type: "radio", name: "dir" + i, value: d});
      l.appendChild(r); l.appendChild(document.createTextNode(d === "same" ? " about the same (±5%) " : " " + d + " "));
      form.appendChild(l);
    });
    form.appendChild(el("span", {}, " by about "));
    form.appendChild(el("input", {type: "number", class: "guess", step: "any", placeholder: "%"}));
    form.appendChild(el("span", {}, " % "));
    var commit = el("button", {type: "button", class: "commit"}, "Commit prediction");
    form.appendChild(commit);
    card.appendChild(form);
    var out = el("div", {class: "outcome"});
    card.appendChild(out);
    commit.addEventListener("click", function () {
      var picked = card.querySelector("input[type=radio]:checked");
      if (!picked) { out.textContent = "Choose up, about the same or down first: commit before you look."; return; }
      var guess = card.querySelector("input.guess").value;
      card.querySelectorAll("input,button").forEach(function (c) { c.disabled = true; });
      out.textContent = "prediction committed; running the baseline and the change…";
      post("/api/exercise", {index: i, prediction: {direction: picked.value,
                             guess_percent: guess === "" ? null : Number(guess)}}).then(function (r) {
        out.innerHTML = "";
        var pct = r.change_percent === null ? "" : " (" + (r.change_percent >= 0 ? "+" : "") + r.change_percent.toFixed(0) + "%)";
        out.appendChild(el("p", {class: "measured"}, r.metric + ": " + r.baseline_text + " → " + r.changed_text + pct +
          ". You said " + r.direction + (r.guess_percent === null ? "" : " by " + r.guess_percent + "%") +
          ": " + (r.correct ? "right." : "the measurement went " + r.measured_direction + ".")));
        out.appendChild(el("p", {class: "answer"}, r.answer));
      }).catch(function (err) { out.textContent = "error: " + err.message; });
    });
    box.appendChild(card);
  });
}
function start() {
  fetch("/api/scenario").then(function (r) { return r.json(); }).then(function (s) {
    info = s;
    document.title = s.scenario + ": polybus lab";
    $("title").textContent = s.scenario;
    $("description").textContent = s.description;
    $("lesson").textContent = s.lesson ? "Lesson: " + s.lesson : "";
    $("diagrams").innerHTML = s.diagrams.join("");
    var load = $("load"), workers = $("workers");
    s.flows.forEach(function (f) {
      slider(load, f.flow + " rate", {min: "0.25", max: "3", step: "0.05", value: "1", "data-flow": f.flow},
             function (v) { return (f.rate * v).toPrecision(3) + " /s (×" + v.toFixed(2) + ")"; });
    });
    s.services.forEach(function (w) {
      slider(workers, w.service + " workers", {min: "1", max: String(w.max), step: "1", value: String(w.workers),
             "data-service": w.service}, function (v) { return String(v); });
    });
    var prov = $("provider");
    s.providers.forEach(function (p) { var o = el("option", {value: p}, p); if (p === s.provider) { o.selected = true; } prov.appendChild(o); });
    var fault = $("fault");
    s.faults.forEach(function (f) { var o = el("option", {value: f.id}, f.label); if (f.id === s.fault) { o.selected = true; } fault.appendChild(o); });
    prov.addEventListener("change", schedule);
    fault.addEventListener("change", schedule);
    exercises(s.exercises);
    rerun();
  });
}
window.addEventListener("load", start);
"""

LAB_STYLE = """
body{max-width:1500px}
#controls{display:flex;flex-wrap:wrap;gap:.5em 2em;background:#f7f7f7;padding:.6em 1em;border-radius:6px}
.control{display:flex;align-items:center;gap:.5em;margin:.2em 0}.control .name{min-width:9em}
.control input{width:160px}.control output{min-width:9em;font-variant-numeric:tabular-nums}
#diagrams{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start;margin:1em 0}
#figures{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:0 1.5em}
#status{color:#555;font-size:.9em;min-height:1.2em}
.exercise{border:1px solid #ddd;border-radius:6px;padding:.4em 1em;margin:.6em 0}
.question{font-weight:bold}.change{color:#555;font-size:.9em}.answer{background:#f4f7fb;padding:.4em .8em}
input.guess{width:5em}
"""

PAGE = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>polybus lab</title>
<style>{STYLE}{LAB_STYLE}</style></head>
<body>
<h1 id="title">polybus lab</h1>
<p id="description"></p>
<p id="lesson"></p>
<section id="controls">
  <div id="load"><h3>Workload</h3></div>
  <div id="workers"><h3>Workers per service</h3></div>
  <div><h3>Broker and fault</h3>
    <label class="control"><span class="name">provider</span><select id="provider"></select></label>
    <label class="control"><span class="name">fault</span><select id="fault"></select></label>
  </div>
</section>
<p id="status"></p>
<div id="diagrams"></div>
<ul class="headline" id="headline"></ul>
<div id="figures"></div>
<div id="tables"></div>
<h2>Exercises</h2>
<p class="note">Commit a prediction before the answer is shown; the lab runs the baseline and the change
on the same seeds.</p>
<div id="exercises"></div>
<script>{RENDER_CHECK}{SCRIPT}</script>
</body></html>
"""

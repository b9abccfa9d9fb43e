// mixfx app: upload, run, poll, listen (A/B at the same position), compare, edit the preset.
"use strict";

const $ = (id) => document.getElementById(id);
const SOURCES = ["input", "reference", "output"];
let job = null;        // the current job's id
let status = null;     // its last status
let current = "output"; // the A/B selection
let polling = null;

function showMessage(text) {
  const box = $("message");
  box.textContent = text;
  box.hidden = !text;
}

function setState(state) {
  document.body.dataset.state = state;
}

async function loadConfig() {
  const res = await fetch("/api/config");
  const cfg = await res.json();
  $("limits").textContent = `each file at most ${cfg.max_seconds} s` +
    (cfg.separator_weights ? "; mixes are separated with Demucs" : "; upload stems (no Demucs weights given)");
}

function updateBlend() {
  const haveB = $("reference_b").files.length > 0;
  $("blend").disabled = !haveB;
  const w = parseFloat($("blend").value);
  $("blend-a").textContent = Math.round(100 * (haveB ? w : 1));
  $("blend-b").textContent = Math.round(100 * (haveB ? 1 - w : 0));
}

async function submit(event) {
  event.preventDefault();
  showMessage("");
  const form = new FormData();
  for (const key of ["input", "reference", "reference_b"]) {
    for (const f of $(key).files) form.append(key, f, f.name);
  }
  if ($("input").files.length === 0 || $("reference").files.length === 0) {
    showMessage("Choose the input and the reference first.");
    return;
  }
  form.append("method", document.querySelector("input[name=method]:checked").value);
  form.append("refine", $("refine").value || "20");
  form.append("fxnorm", $("fxnorm").checked ? "true" : "false");
  if ($("reference_b").files.length > 0) form.append("blend", $("blend").value);
  closeJob();
  $("run").disabled = true;
  setState("uploading");
  $("progress-box").hidden = false;
  $("stage").textContent = "uploading";
  $("progress").value = 0;
  try {
    const res = await fetch("/api/jobs", { method: "POST", body: form });
    const body = await res.json();
    if (!res.ok) throw new Error(body.error || `the server answered ${res.status}`);
    job = body.id;
    poll();
  } catch (err) {
    fail(err.message);
  }
}

function fail(text) {
  showMessage(text);
  setState("failed");
  $("run").disabled = false;
  $("progress-box").hidden = true;
}

function poll() {
  clearTimeout(polling);
  polling = setTimeout(async () => {
    try {
      const res = await fetch(`/api/jobs/${job}`);
      const body = await res.json();
      if (!res.ok) throw new Error(body.error || `the server answered ${res.status}`);
      status = body;
      $("progress").value = body.progress;
      $("stage").textContent = body.queue_position > 0
        ? `queued (${body.queue_position} ahead)` : body.stage;
      if (body.state === "done") return finished();
      if (body.state === "failed") return fail(body.error);
      setState(body.state);
      poll();
    } catch (err) {
      fail(err.message);
    }
  }, 400);
}

function fileUrl(name) {
  return `/api/jobs/${job}/files/${name}?v=${status.version}`;
}

function finished() {
  $("run").disabled = false;
  $("rerender").disabled = false;
  $("progress-box").hidden = true;
  $("results").hidden = false;
  const keep = {};
  for (const s of SOURCES) {
    const a = $(`audio-${s}`);
    keep[s] = a.currentTime;
    a.src = fileUrl(status.files[s]);
  }
  for (const p of ["spectrum", "loudness", "width"]) $(`plot-${p}`).src = fileUrl(status.files[p]);
  $("dl-output").href = fileUrl(status.files.output);
  $("dl-stems").href = fileUrl(status.files.stems);
  $("dl-preset").hidden = !status.files.preset;
  if (status.files.preset) $("dl-preset").href = fileUrl(status.files.preset);
  const f = status.figures;
  const fmt = (x, unit) => (x === null || x === undefined ? "n/a" : `${x.toFixed(1)} ${unit}`);
  $("figures").textContent = SOURCES.map((s) =>
    `${s}: ${fmt(f[s].lufs, "LUFS")}, peak ${fmt(f[s].peak_dbfs, "dBFS")}, width ${f[s].width.mix.toFixed(2)}`
  ).join(" · ");
  applyVolumes();
  renderPreset(status.preset);
  selectAB(current, false);
  document.getElementById("results").dataset.version = status.version;
  setState("done");
}

// -- A/B: one source plays at a time; switching keeps the playback position ------------------
function selectAB(name, keepPosition = true) {
  const from = $(`audio-${current}`);
  const to = $(`audio-${name}`);
  const playing = !from.paused;
  const position = from.currentTime;
  if (name !== current) {
    for (const s of SOURCES) $(`audio-${s}`).pause();
    if (keepPosition) {
      const end = Number.isFinite(to.duration) ? to.duration : position;
      to.currentTime = Math.min(position, end);
    }
    if (playing) to.play();
  }
  current = name;
  for (const b of document.querySelectorAll("[data-ab]")) {
    b.classList.toggle("active", b.dataset.ab === name);
  }
  $("ab-now").textContent = `now: ${name}`;
}

function togglePlay() {
  const a = $(`audio-${current}`);
  if (a.paused) {
    for (const s of SOURCES) if (s !== current) $(`audio-${s}`).pause();
    a.play();
  } else {
    a.pause();
  }
}

function applyVolumes() {
  if (!status) return;
  const lufs = SOURCES.map((s) => status.figures[s].lufs).filter((x) => x !== null);
  const quietest = Math.min(...lufs);
  for (const s of SOURCES) {
    const l = status.figures[s].lufs;
    const gain = $("matched").checked && l !== null ? Math.pow(10, (quietest - l) / 20) : 1;
    $(`audio-${s}`).volume = Math.min(1, gain);
  }
}

// -- the preset: one table per stem, every value editable -------------------------------------
function renderPreset(preset) {
  const box = $("preset");
  box.textContent = "";
  $("preset-box").hidden = !preset;
  if (!preset) return;
  for (const [stem, chain] of Object.entries(preset.stems)) {
    const column = document.createElement("div");
    const h = document.createElement("h3");
    h.textContent = stem;
    column.appendChild(h);
    const table = document.createElement("table");
    table.className = "preset";
    table.innerHTML = "<tr><th>effect</th><th>on</th><th>parameter</th><th>value</th><th></th></tr>";
    chain.chain.forEach((entry, k) => {
      const rows = [];
      if (entry.bands) {
        for (const [band, params] of Object.entries(entry.bands)) {
          for (const [name, v] of Object.entries(params)) {
            if (v && typeof v === "object" && "value" in v) rows.push([`${band} ${name}`, ["bands", band, name], v]);
          }
        }
      } else {
        for (const [name, v] of Object.entries(entry.params || {})) rows.push([name, ["params", name], v]);
      }
      rows.forEach(([label, path, v], i) => {
        const tr = document.createElement("tr");
        tr.className = entry.on ? "" : "off";
        const effect = document.createElement("td");
        effect.textContent = i === 0 ? entry.effect : "";
        const on = document.createElement("td");
        if (i === 0) {
          const box = document.createElement("input");
          box.type = "checkbox";
          box.checked = entry.on;
          box.dataset.stem = stem;
          box.dataset.index = k;
          box.className = "preset-on";
          on.appendChild(box);
        }
        const name = document.createElement("td");
        name.textContent = label;
        const value = document.createElement("td");
        const input = document.createElement("input");
        input.type = "number";
        input.step = "any";
        input.value = Number(v.value.toPrecision(6));
        input.dataset.shown = input.value; // only edited values are sent back (exact otherwise)
        input.className = "preset-value";
        input.dataset.stem = stem;
        input.dataset.index = k;
        input.dataset.path = JSON.stringify(path);
        input.dataset.param = `${stem}.${entry.effect}.${label.replace(" ", ".")}`;
        value.appendChild(input);
        const unit = document.createElement("td");
        unit.textContent = v.unit;
        tr.append(effect, on, name, value, unit);
        table.appendChild(tr);
      });
    });
    column.appendChild(table);
    box.appendChild(column);
  }
}

async function rerender() {
  const preset = JSON.parse(JSON.stringify(status.preset));
  for (const input of document.querySelectorAll(".preset-value")) {
    if (input.value === input.dataset.shown) continue;
    const entry = preset.stems[input.dataset.stem].chain[Number(input.dataset.index)];
    let node = entry;
    const path = JSON.parse(input.dataset.path);
    for (const key of path) node = node[key];
    const x = Number(input.value);
    if (input.value === "" || !Number.isFinite(x)) {
      showMessage(`${input.dataset.param}: not a number`);
      return;
    }
    node.value = x;
  }
  for (const box of document.querySelectorAll(".preset-on")) {
    preset.stems[box.dataset.stem].chain[Number(box.dataset.index)].on = box.checked;
  }
  showMessage("");
  $("rerender").disabled = true;
  setState("rendering");
  try {
    const res = await fetch(`/api/jobs/${job}/preset`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(preset),
    });
    const body = await res.json();
    if (!res.ok) throw new Error(body.error || `the server answered ${res.status}`);
    $("progress-box").hidden = false;
    poll();
  } catch (err) {
    showMessage(err.message);
    $("rerender").disabled = false;
    setState("done");
  }
}

function closeJob() {
  if (job) navigator.sendBeacon(`/api/jobs/${job}/close`);
  job = null;
  status = null;
  $("results").hidden = true;
}

$("form").addEventListener("submit", submit);
$("reference_b").addEventListener("change", updateBlend);
$("blend").addEventListener("input", updateBlend);
$("matched").addEventListener("change", applyVolumes);
$("ab-play").addEventListener("click", togglePlay);
$("rerender").addEventListener("click", rerender);
for (const b of document.querySelectorAll("[data-ab]")) b.addEventListener("click", () => selectAB(b.dataset.ab));
window.addEventListener("pagehide", closeJob);
updateBlend();
loadConfig();
setState("idle");

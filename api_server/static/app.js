// Quantum Task Queue dashboard. Plain JavaScript, no build step, no CDN.
// Everything user-supplied (circuit text, errors, ids) is rendered with textContent, never as HTML.
"use strict";

const QTQ = (() => {
  const BELL = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nbit[2] c;\nh q[0];\ncx q[0], q[1];\nc = measure q;\n';
  const TERMINAL = new Set(["completed", "failed", "cancelled"]);
  const STATES = ["submitted", "pending", "completed", "failed", "cancelled"];
  const MAX_BARS = 256;
  const SVG = "http://www.w3.org/2000/svg";

  async function api(path, options = {}) {
    const response = await fetch(path, { headers: { "Content-Type": "application/json" }, ...options });
    let body = null;
    try { body = await response.json(); } catch (_) { /* not JSON */ }
    return { status: response.status, body };
  }

  function describeError(body, status) {
    if (body && Array.isArray(body.detail)) return body.detail.map((d) => d.msg).join("\n");
    if (body && typeof body.detail === "string") return body.detail;
    return `HTTP ${status}`;
  }

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function when(value) {
    return value ? new Date(value).toLocaleString() : "";
  }

  function statusNode(status) {
    return el("span", status, `status status-${status}`);
  }

  // ----- index page ------------------------------------------------------------------------

  async function refreshSummary() {
    const { status, body } = await api("/health");
    const summary = document.getElementById("summary");
    const workers = document.getElementById("workers");
    summary.replaceChildren();
    if (status !== 200) {
      summary.append(el("p", `Service unavailable: ${describeError(body, status)}`, "error"));
      return;
    }
    for (const state of STATES) {
      const card = el("div", null, "card");
      card.dataset.state = state;
      card.append(el("b", body.queue[state] ?? 0), el("span", state, `status-${state}`));
      summary.append(card);
    }
    const busy = body.workers.filter((w) => w.task_id).length;
    workers.textContent = `${body.workers.length} live worker(s), ${busy} busy: ` +
      body.workers.map((w) => `${w.host}:${w.pid}`).join(", ");
  }

  async function refreshTasks() {
    const state = document.getElementById("state-filter").value;
    const query = new URLSearchParams({ limit: "50" });
    if (state) query.set("status", state);
    const { status, body } = await api(`/tasks?${query}`);
    const rows = document.querySelector("#tasks tbody");
    if (status !== 200) return;
    rows.replaceChildren();
    for (const task of body.items) {
      const row = document.createElement("tr");
      const link = el("a", task.task_id.slice(0, 8));
      link.href = `/ui/tasks/${encodeURIComponent(task.task_id)}`;
      link.title = task.task_id;
      const idCell = document.createElement("td");
      idCell.append(link);
      const stateCell = document.createElement("td");
      stateCell.append(statusNode(task.status));
      row.append(idCell, stateCell, el("td", task.shots), el("td", task.num_qubits ?? ""),
        el("td", when(task.created_at)), el("td", when(task.finished_at)));
      rows.append(row);
    }
  }

  async function submitForm(event) {
    event.preventDefault();
    const error = document.getElementById("submit-error");
    const button = document.getElementById("submit-button");
    error.textContent = "";
    const payload = { circuit: document.getElementById("circuit").value };
    const shots = document.getElementById("shots").value;
    const seed = document.getElementById("seed").value;
    if (shots !== "") payload.shots = Number(shots);
    if (seed !== "") payload.seed = Number(seed);
    button.disabled = true;
    try {
      const { status, body } = await api("/tasks", { method: "POST", body: JSON.stringify(payload) });
      if (status === 202) {
        window.location.assign(`/ui/tasks/${encodeURIComponent(body.task_id)}`);
        return;
      }
      error.textContent = describeError(body, status);
    } catch (e) {
      error.textContent = `Could not reach the service: ${e}`;
    } finally {
      button.disabled = false;
    }
  }

  function indexPage() {
    document.getElementById("circuit").value = BELL;
    document.getElementById("submit-form").addEventListener("submit", submitForm);
    document.getElementById("state-filter").addEventListener("change", refreshTasks);
    const tick = () => Promise.allSettled([refreshSummary(), refreshTasks()]);
    tick();
    setInterval(tick, 2000);
  }

  // ----- task page -------------------------------------------------------------------------

  function histogram(counts) {
    const keys = Object.keys(counts).sort();
    const shown = keys.slice(0, MAX_BARS);
    const max = Math.max(...shown.map((k) => counts[k]));
    const barWidth = Math.max(14, Math.min(60, Math.floor(840 / shown.length) - 6));
    const labelRoom = Math.min(160, 12 + 7.5 * (keys[0] || "").length);
    const chartHeight = 220;
    const width = 40 + shown.length * (barWidth + 6);
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("width", String(width));
    svg.setAttribute("height", String(chartHeight + labelRoom + 20));
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "Measurement counts by bitstring");
    shown.forEach((key, i) => {
      const value = counts[key];
      const h = Math.max(1, Math.round((value / max) * chartHeight));
      const x = 30 + i * (barWidth + 6);
      const bar = document.createElementNS(SVG, "rect");
      bar.setAttribute("class", "bar");
      bar.setAttribute("x", String(x));
      bar.setAttribute("y", String(20 + chartHeight - h));
      bar.setAttribute("width", String(barWidth));
      bar.setAttribute("height", String(h));
      bar.dataset.bitstring = key;
      bar.dataset.count = String(value);
      const tip = document.createElementNS(SVG, "title");
      tip.textContent = `${key}: ${value}`;
      bar.append(tip);
      const value_label = document.createElementNS(SVG, "text");
      value_label.setAttribute("x", String(x + barWidth / 2));
      value_label.setAttribute("y", String(14 + chartHeight - h));
      value_label.setAttribute("text-anchor", "middle");
      value_label.textContent = shown.length <= 32 ? String(value) : "";
      const label = document.createElementNS(SVG, "text");
      label.setAttribute("class", "bar-label");
      const lx = x + barWidth / 2;
      const ly = chartHeight + 34;
      label.setAttribute("x", String(lx));
      label.setAttribute("y", String(ly));
      label.setAttribute("text-anchor", key.length > 4 ? "end" : "middle");
      if (key.length > 4) label.setAttribute("transform", `rotate(-60 ${lx} ${ly})`);
      label.textContent = key;
      svg.append(bar, value_label, label);
    });
    const holder = document.getElementById("histogram");
    holder.replaceChildren(svg);
    if (keys.length > shown.length) {
      holder.append(el("p", `Showing the first ${shown.length} of ${keys.length} outcomes, by bitstring.`, "muted"));
    }
  }

  function renderFacts(task) {
    const facts = document.getElementById("facts");
    facts.replaceChildren();
    const rows = [
      ["Shots", task.shots], ["Seed", task.seed], ["Attempts", task.attempts],
      ["Qubits", task.num_qubits], ["Depth", task.depth],
      ["Simulation", task.duration_ms !== undefined ? `${task.duration_ms} ms` : undefined],
      ["Submitted", when(task.created_at)], ["Started", when(task.started_at)], ["Finished", when(task.finished_at)],
    ];
    for (const [name, value] of rows) {
      if (value === undefined || value === "") continue;
      facts.append(el("dt", name), el("dd", value));
    }
  }

  async function loadCircuit(taskId) {
    const { status, body } = await api(`/tasks/${encodeURIComponent(taskId)}/circuit`);
    if (status !== 200) return false;
    document.getElementById("circuit-text").textContent = body.circuit;
    const diagram = document.getElementById("diagram");
    if (body.diagram) {
      diagram.textContent = body.diagram;
      diagram.hidden = false;
    }
    return Boolean(body.diagram);
  }

  function taskPage() {
    const taskId = decodeURIComponent(window.location.pathname.split("/").pop());
    document.getElementById("task-id").textContent = taskId;
    const cancel = document.getElementById("cancel-button");
    let drawn = false;
    let timer = null;

    async function refresh() {
      const { status, body } = await api(`/tasks/${encodeURIComponent(taskId)}`);
      const state = document.getElementById("status");
      const error = document.getElementById("task-error");
      if (status !== 200) {
        state.replaceChildren(el("span", describeError(body, status), "error"));
        clearInterval(timer);
        return;
      }
      state.replaceChildren(statusNode(body.status));
      state.dataset.status = body.status;
      if (body.cancel_requested) state.append(el("span", " (cancel requested)", "muted"));
      cancel.hidden = TERMINAL.has(body.status);
      renderFacts(body);
      error.hidden = !body.error;
      error.textContent = body.error || "";
      if (body.result) {
        document.getElementById("result-section").hidden = false;
        histogram(body.result);
      }
      if (!drawn && (body.num_qubits !== undefined || TERMINAL.has(body.status))) drawn = await loadCircuit(taskId);
      if (TERMINAL.has(body.status)) clearInterval(timer);
    }

    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      const { status, body } = await api(`/tasks/${encodeURIComponent(taskId)}/cancel`, { method: "POST" });
      if (status >= 400 && status !== 409) document.getElementById("task-error").textContent = describeError(body, status);
      cancel.disabled = false;
      refresh();
    });
    loadCircuit(taskId);
    refresh();
    timer = setInterval(refresh, 1000);
  }

  return { indexPage, taskPage, histogram };
})();

// No inline script (the pages' Content-Security-Policy forbids it): each page names itself instead.
if (document.body.dataset.page === "index") QTQ.indexPage();
if (document.body.dataset.page === "task") QTQ.taskPage();

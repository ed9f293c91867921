// Quantum Task Queue dashboard. Plain JavaScript, no build step, no CDN.
// Everything user-supplied (circuit text, errors, ids) is rendered with textContent, never as HTML.
"use strict";

const QTQ = (() => {
  const BELL = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nbit[2] c;\nh q[0];\ncx q[0], q[1];\nc = measure q;\n';
  const TERMINAL = new Set(["completed", "failed", "cancelled"]);
  const STATES = ["submitted", "pending", "completed", "failed", "cancelled"];
  const SVG = "http://www.w3.org/2000/svg";
  const PAGE_SIZE = 50;
  // The chart shows this many outcomes by count; the rest share one "other" bar, so its size
  // and cost stay the same for 2 outcomes or 100,000.
  const TOP_OUTCOMES = 16;
  const MAX_LABEL_CHARS = 34;
  const CHAR_WIDTH = 7.3; // of the chart's 12px monospace text
  // Fixed locale: the same digits for every reader (and every test run).
  const COUNT = new Intl.NumberFormat("en-US");
  const PERCENT = new Intl.NumberFormat("en-US", { maximumSignificantDigits: 3 });
  // A sweep's chart follows the outcomes most frequent over the whole sweep, a line each; any
  // chart has at most MAX_LINES lines, as many as style.css has series colours.
  const SWEEP_OUTCOMES = 4;
  const MAX_LINES = 8;
  // Up to this many points each gets a dot (drawn by one more path, not a node per point).
  const DOTS_UP_TO = 60;
  const LISTED_VALUES = 6; // of a swept parameter, in the facts

  // Every request goes through auth.js, which adds the tab's API key and asks for one on a 401.
  const { api, describeError } = QTQAuth;

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  // Times in UTC, ISO 8601 to the millisecond with its `Z`: the API's own form cut to ms, unambiguous
  // for readers in any zone and sortable as text.
  function when(value) {
    return value ? new Date(value).toISOString() : "";
  }

  function timeNode(value) {
    const node = el("time", when(value));
    if (value) node.dateTime = value;
    return node;
  }

  // 0.812 -> "812 µs", 8.77 -> "8.8 ms", 25297.455 -> "25.3 s", 432000 -> "7 min 12 s".
  function duration(ms) {
    const micros = Math.round(ms * 1000);
    if (micros < 1000) return `${micros} µs`;
    if (ms < 99.95) return `${ms.toFixed(1)} ms`;
    if (ms < 999.5) return `${Math.round(ms)} ms`;
    const seconds = ms / 1000;
    if (seconds < 59.95) return `${seconds.toFixed(1)} s`;
    const whole = Math.round(seconds);
    if (whole < 3600) return `${Math.floor(whole / 60)} min ${whole % 60} s`;
    const minutes = Math.round(whole / 60);
    return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
  }

  function percent(count, total) {
    const text = PERCENT.format((count / total) * 100);
    // Three digits would round 99.96% up to a "100%" that is not all the shots.
    return `${text === "100" && count < total ? ">99.9" : text}%`;
  }

  // Six significant digits, written as JavaScript writes numbers: 1, 0.707107, -0.5, 1.5e-7.
  function number(value) {
    return String(Number(value.toPrecision(6)));
  }

  // "ZZ", or [["ZI", 0.5], ["IZ", -0.5]] as "0.5·ZI − 0.5·IZ".
  function observableLabel(observable) {
    if (typeof observable === "string") return observable;
    return observable.map(([pauli, coefficient], i) => {
      const sign = coefficient < 0 ? (i ? " − " : "−") : (i ? " + " : "");
      return `${sign}${number(Math.abs(coefficient))}·${pauli}`;
    }).join("");
  }

  function expectationText(value, observable) {
    // Exact values still carry float rounding (1e-17 for a true 0): a value below 1e-12 of the
    // largest the observable can take reads as 0 (the title keeps the exact number).
    const scale = typeof observable === "string" ? 1 : observable.reduce((sum, [, c]) => sum + Math.abs(c), 0);
    return Math.abs(value) < 1e-12 * scale ? "0" : number(value);
  }

  function statusNode(status) {
    return el("span", status, `status status-${status}`);
  }

  function batchLink(batchId) {
    const link = el("a", batchId.slice(0, 8), "batch-link");
    link.href = `/ui/batches/${encodeURIComponent(batchId)}`;
    link.title = `Batch ${batchId}`;
    return link;
  }

  // Each tag as `key:value` text; as links that filter the task list by it when `linked`.
  function tagList(tags, linked) {
    const list = el("ul", null, "tags");
    for (const [key, value] of Object.entries(tags || {})) {
      const item = el("li");
      const text = `${key}:${value}`;
      if (linked) {
        const link = el("a", text, "tag");
        link.href = `/?${new URLSearchParams({ tag: text })}`;
        link.title = `Tasks tagged ${text}`;
        item.append(link);
      } else {
        item.append(el("code", text, "tag"));
      }
      list.append(item);
    }
    return list;
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
    if (!body.queue) return; // the short answer to a request without a key: the sign-in shows instead
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

  // The list pages with the API's keyset cursors: `cursors` holds the cursor of each page after
  // the first, so "Newer" goes back exactly and an older page stays put while new tasks arrive.
  // `tags` are the tag filters, `key:value` each; a task must carry every one.
  const list = { cursors: [], next: null, request: 0, tags: [] };

  // What the API's tag filter takes: a key of letters, digits and `_.-` (split at the first colon).
  const TAG_FILTER_KEY = /^[A-Za-z0-9_.-]{1,64}$/;
  const MAX_TAG_FILTERS = 16;
  const MAX_TAG_VALUE = 256;

  // Why `text` is no tag filter, or null when it is one.
  function tagFilterProblem(text) {
    const colon = text.indexOf(":");
    if (!text) return "Enter a tag as key:value, e.g. project:vqe-h2.";
    if (colon < 0) return `A tag filter is key:value, e.g. project:vqe-h2; "${text}" has no colon.`;
    const key = text.slice(0, colon);
    if (!TAG_FILTER_KEY.test(key)) return `"${key}" is not a tag key: 1 to 64 letters, digits, _ . or -.`;
    if (text.length - colon - 1 > MAX_TAG_VALUE) return `A tag value is at most ${MAX_TAG_VALUE} characters.`;
    if (text.includes("\u0000")) return "A tag value cannot hold a NUL character.";
    return null;
  }

  // The filters live in the page's URL (`/?status=failed&tag=project:vqe-h2`): a filtered list
  // can be bookmarked, shared and reloaded.
  function saveFiltersInUrl() {
    const query = new URLSearchParams();
    const state = document.getElementById("state-filter").value;
    if (state) query.set("status", state);
    for (const tag of list.tags) query.append("tag", tag);
    const search = String(query);
    window.history.replaceState(null, "", search ? `/?${search}` : "/");
  }

  function loadFiltersFromUrl() {
    const query = new URLSearchParams(window.location.search);
    const state = query.get("status");
    if (STATES.includes(state)) document.getElementById("state-filter").value = state;
    const problems = [];
    for (const tag of query.getAll("tag")) {
      const problem = tagFilterProblem(tag);
      if (problem) problems.push(problem);
      else if (!list.tags.includes(tag) && list.tags.length < MAX_TAG_FILTERS) list.tags.push(tag);
    }
    document.getElementById("tag-error").textContent = problems.length ? `Left out of the filter: ${problems.join(" ")}` : "";
  }

  function renderTagFilters() {
    const items = list.tags.map((tag) => {
      const item = el("li", null, "filter");
      const remove = el("button", "×", "remove");
      remove.type = "button";
      remove.title = `Remove the filter ${tag}`;
      remove.setAttribute("aria-label", `Remove the filter ${tag}`);
      remove.addEventListener("click", () => {
        list.tags = list.tags.filter((other) => other !== tag);
        filtersChanged();
      });
      item.append(el("code", tag), remove);
      return item;
    });
    document.getElementById("tag-filters").replaceChildren(...items);
  }

  // A filter starts again from the newest task.
  function filtersChanged() {
    list.cursors = [];
    renderTagFilters();
    saveFiltersInUrl();
    refreshTasks();
  }

  function addTagFilter(event) {
    event.preventDefault();
    const input = document.getElementById("tag-input");
    const message = document.getElementById("tag-error");
    const tag = input.value.trim();
    const problem = tagFilterProblem(tag) ||
      (list.tags.length >= MAX_TAG_FILTERS && !list.tags.includes(tag) ? `At most ${MAX_TAG_FILTERS} tag filters.` : null);
    message.textContent = problem || "";
    if (problem) return;
    input.value = "";
    if (!list.tags.includes(tag)) list.tags.push(tag);
    filtersChanged();
  }

  async function refreshTasks() {
    const request = ++list.request;
    const state = document.getElementById("state-filter").value;
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (state) query.set("status", state);
    for (const tag of list.tags) query.append("tag", tag);
    const cursor = list.cursors.at(-1);
    if (cursor) query.set("cursor", cursor);
    const { status, body } = await api(`/tasks?${query}`);
    // A page change or filter started a newer request: this answer is for a page no longer shown.
    if (request !== list.request) return;
    if (status === 422) document.getElementById("tag-error").textContent = describeError(body, status);
    if (status !== 200) return;
    // Admin keys see every key's tasks, each with its owner: then the list has an Owner column.
    const owners = body.items.some((task) => "owner" in task);
    document.getElementById("owner-heading").hidden = !owners;
    const rows = body.items.map((task) => {
      const row = document.createElement("tr");
      const link = el("a", task.task_id.slice(0, 8), "task-link");
      link.href = `/ui/tasks/${encodeURIComponent(task.task_id)}`;
      link.title = task.task_id;
      const cells = [link, ...(owners ? [task.owner ?? ""] : []), statusNode(task.status),
        COUNT.format(task.shots), task.num_qubits ?? "", timeNode(task.created_at), timeNode(task.finished_at),
        task.batch_id ? batchLink(task.batch_id) : "", tagList(task.tags, true)];
      row.append(...cells.map((cell) => {
        const td = document.createElement("td");
        td.append(cell instanceof Node ? cell : String(cell));
        return td;
      }));
      return row;
    });
    if (rows.length === 0) {
      const empty = el("td", list.cursors.length ? "No older tasks." : "No tasks.", "muted");
      empty.colSpan = owners ? 9 : 8;
      rows.push(document.createElement("tr"));
      rows[0].append(empty);
    }
    document.querySelector("#tasks tbody").replaceChildren(...rows);
    list.next = body.next_cursor ?? null;
    const first = list.cursors.length * PAGE_SIZE;
    document.getElementById("page-info").textContent = body.items.length
      ? `Tasks ${COUNT.format(first + 1)}–${COUNT.format(first + body.items.length)}, newest first`
      : "";
    document.getElementById("newer-button").disabled = list.cursors.length === 0;
    document.getElementById("older-button").disabled = list.next === null;
  }

  // What the signed-in key used (an admin key: every key); nothing while the service is open.
  async function refreshUsage() {
    if (!QTQAuth.storedKey()) return;
    const { status, body } = await api("/usage");
    if (status !== 200) return;
    const seconds = (value) => {
      const cell = el("td", value ? duration(value * 1000) : "0 s", "number");
      cell.title = `${value} s`;
      return cell;
    };
    const rows = body.items.map((item) => {
      const row = el("tr");
      // No owner: the tasks submitted while the service was still open (an admin sees them).
      row.append(item.owner === undefined ? el("td", "(before keys)", "muted") : el("td", item.owner));
      for (const figures of [item.today, item.total]) {
        const count = (value) => el("td", COUNT.format(value), "number");
        row.append(count(figures.tasks_submitted), count(figures.shots), seconds(figures.simulation_seconds));
      }
      return row;
    });
    document.querySelector("#usage tbody").replaceChildren(...rows);
    document.getElementById("usage-section").hidden = false;
  }

  function showPage(change) {
    change();
    refreshTasks();
  }

  async function findTask(event) {
    event.preventDefault();
    const input = document.getElementById("find-id");
    const message = document.getElementById("find-error");
    const taskId = input.value.trim();
    message.textContent = "";
    if (!taskId) {
      message.textContent = "Enter a task id.";
      return;
    }
    const { status, body } = await api(`/tasks/${encodeURIComponent(taskId)}`);
    // An id such as ".." is resolved by the URL parser before it reaches the API: only an answer
    // about this very id counts.
    if (status === 200 && body && body.task_id === taskId) {
      window.location.assign(`/ui/tasks/${encodeURIComponent(taskId)}`);
    } else if (status === 200 || status === 404 || status === 422) {
      message.textContent = `Task not found: ${taskId}`;
    } else {
      message.textContent = describeError(body, status);
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
    } finally {
      button.disabled = false;
    }
  }

  function indexPage() {
    document.getElementById("circuit").value = BELL;
    document.getElementById("submit-form").addEventListener("submit", submitForm);
    loadFiltersFromUrl();
    renderTagFilters();
    document.getElementById("state-filter").addEventListener("change", filtersChanged);
    document.getElementById("tag-form").addEventListener("submit", addTagFilter);
    document.getElementById("older-button").addEventListener("click", () => showPage(() => {
      if (list.next) list.cursors.push(list.next);
    }));
    document.getElementById("newer-button").addEventListener("click", () => showPage(() => { list.cursors.pop(); }));
    document.getElementById("find-form").addEventListener("submit", findTask);
    const tick = () => {
      if (QTQAuth.signingIn()) clearInterval(timer); // nothing to follow until the page has a key
      else Promise.allSettled([refreshSummary(), refreshTasks(), refreshUsage()]);
    };
    const timer = setInterval(tick, 2000);
    tick();
  }

  // ----- task page -------------------------------------------------------------------------

  // Most frequent first, ties by bitstring, so the chart is the same whatever order the JSON had.
  function ahead(a, b) {
    return a.count > b.count || (a.count === b.count && a.key < b.key);
  }

  // One pass over the outcomes keeping the `keep` best in a short sorted array: for 100,000
  // outcomes that costs less than sorting them all, and builds no object per outcome.
  function topOutcomes(counts, keep) {
    const best = [];
    let outcomes = 0;
    let total = 0;
    for (const key in counts) {
      const count = counts[key];
      outcomes += 1;
      total += count;
      const entry = { key, count };
      if (best.length === keep && !ahead(entry, best[keep - 1])) continue;
      let i = best.length;
      while (i > 0 && ahead(entry, best[i - 1])) i -= 1;
      best.splice(i, 0, entry);
      if (best.length > keep) best.pop();
    }
    return { best, outcomes, total };
  }

  function svgNode(tag, attributes, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // A horizontal bar per outcome: long bitstrings read left to right, and the chart's width is
  // its card's (a viewBox scaled to 100%), never the number of outcomes.
  function histogram(counts, shots) {
    // One more than TOP_OUTCOMES: a single leftover outcome is shown as itself, not as "other".
    const { best, outcomes, total } = topOutcomes(counts, TOP_OUTCOMES + 1);
    const bars = best.map(({ key, count }) => ({ key, count, label: key }));
    if (outcomes > bars.length) bars.pop();
    const shownCount = bars.reduce((sum, bar) => sum + bar.count, 0);
    const rest = { outcomes: outcomes - bars.length, count: total - shownCount };
    if (rest.outcomes > 0) {
      bars.push({ key: null, count: rest.count, label: `other (${COUNT.format(rest.outcomes)} outcomes)` });
    }
    const denominator = shots || total;
    const values = bars.map((bar) => `${COUNT.format(bar.count)} · ${percent(bar.count, denominator)}`);
    const holder = document.getElementById("histogram");
    const longest = Math.max(...bars.map((bar) => Math.min(bar.label.length, MAX_LABEL_CHARS)));
    const labelWidth = 16 + CHAR_WIDTH * longest;
    const valueRoom = 12 + CHAR_WIDTH * Math.max(...values.map((value) => value.length));
    // Drawn at the card's own width, so text is 12px; a narrow screen scales the whole chart down
    // rather than squeezing the bars to nothing.
    const width = Math.max(holder.clientWidth || 880, labelWidth + valueRoom + 100);
    const row = 24;
    const barRoom = width - labelWidth - valueRoom;
    const max = Math.max(...bars.map((bar) => bar.count), 1);
    const svg = svgNode("svg", {
      class: "chart",
      viewBox: `0 0 ${width} ${bars.length * row + 8}`,
      width: "100%",
      role: "img",
      "aria-label": "Measurement counts, most frequent outcomes first",
    });
    bars.forEach((bar, i) => {
      const y = 4 + i * row;
      const length = Math.max(2, (bar.count / max) * barRoom);
      const share = percent(bar.count, denominator);
      const label = svgNode("text", { class: "bar-label", x: labelWidth - 8, y: y + row / 2 + 4, "text-anchor": "end" });
      if (bar.label.length > MAX_LABEL_CHARS) {
        label.textContent = `${bar.label.slice(0, MAX_LABEL_CHARS - 1)}…`;
        label.append(svgNode("title", {}, bar.label));
      } else {
        label.textContent = bar.label;
      }
      const rect = svgNode("rect", {
        class: bar.key === null ? "bar bar-other" : "bar",
        x: labelWidth, y: y + 3, width: length.toFixed(1), height: row - 6,
      });
      rect.dataset.count = String(bar.count);
      if (bar.key === null) rect.dataset.outcomes = String(rest.outcomes);
      else rect.dataset.bitstring = bar.key;
      const name = bar.key === null ? bar.label : bar.key;
      rect.append(svgNode("title", {}, `${name}: ${COUNT.format(bar.count)} shots (${share})`));
      svg.append(label, rect, svgNode("text", { class: "bar-value", x: labelWidth + length + 6, y: y + row / 2 + 4 }, values[i]));
    });
    const note = rest.outcomes > 0
      ? `The ${bars.length - 1} most frequent of ${COUNT.format(outcomes)} outcomes; the other ` +
        `${COUNT.format(rest.outcomes)} share the last bar. Percentages are of ${COUNT.format(denominator)} shots.`
      : `All ${COUNT.format(outcomes)} outcomes, most frequent first. Percentages are of ${COUNT.format(denominator)} shots.`;
    holder.replaceChildren(svg, el("p", note, "muted chart-note"));
  }

  // theta = [0, 0.1, 0.2, …, 3.14159] (32 values); phi = 0.5
  function parametersText(parameters) {
    return Object.entries(parameters).map(([name, value]) => {
      if (!Array.isArray(value)) return `${name} = ${number(value)}`;
      const shown = value.length <= LISTED_VALUES
        ? value.map(number).join(", ")
        : `${value.slice(0, LISTED_VALUES - 2).map(number).join(", ")}, …, ${number(value.at(-1))}`;
      return `${name} = [${shown}] (${COUNT.format(value.length)} values)`;
    }).join("; ");
  }

  function noiseText(noise) {
    const parts = [];
    if (noise.depolarizing_1q != null) parts.push(`1-qubit depolarizing ${number(noise.depolarizing_1q)}`);
    if (noise.depolarizing_2q != null) parts.push(`2-qubit depolarizing ${number(noise.depolarizing_2q)}`);
    const readout = noise.readout || {};
    const flips = ["p01", "p10"].filter((key) => readout[key] != null).map((key) => `${key} ${number(readout[key])}`);
    if (flips.length) parts.push(`readout ${flips.join(", ")}`);
    return parts.join("; ") || "none";
  }

  function observablesText(observables) {
    const shown = observables.slice(0, MAX_LINES).map(observableLabel).join(", ");
    return observables.length > MAX_LINES ? `${shown}, … (${observables.length} in all)` : shown;
  }

  function renderFacts(task) {
    const facts = document.getElementById("facts");
    facts.replaceChildren();
    const rows = [
      ["Owner", task.owner], // shown to admin keys only
      ["Shots", COUNT.format(task.shots)], ["Seed", task.seed], ["Attempts", task.attempts],
      ["Parameters", task.parameters && parametersText(task.parameters)],
      ["Observables", task.observables && observablesText(task.observables)],
      ["Method", task.method], ["Noise", task.noise && noiseText(task.noise)],
      ["Qubits", task.num_qubits], ["Depth", task.depth],
      ["Parsing", task.parse_ms], ["Transpilation", task.transpile_ms], ["Simulation", task.duration_ms],
      ["Submitted", task.created_at], ["Started", task.started_at], ["Finished", task.finished_at],
      ["Batch", task.batch_id && batchLink(task.batch_id)], ["Tags", task.tags && tagList(task.tags, true)],
    ];
    const times = new Set(["Submitted", "Started", "Finished"]);
    const durations = new Set(["Parsing", "Transpilation", "Simulation"]);
    for (const [name, value] of rows) {
      if (value === undefined || value === null) continue;
      const node = value instanceof Node;
      const dd = el("dd", durations.has(name) ? duration(value) : times.has(name) || node ? null : value);
      if (node) dd.append(value);
      if (times.has(name)) dd.append(timeNode(value));
      if (durations.has(name)) dd.title = `${value} ms`;
      facts.append(el("dt", name), dd);
    }
  }

  // About `count` round steps (1, 2 or 5 times a power of ten) from lo to hi.
  function ticks(lo, hi, count, integer) {
    const raw = (hi - lo) / count;
    const power = 10 ** Math.floor(Math.log10(raw));
    let step = [1, 2, 5, 10].map((m) => m * power).find((candidate) => candidate >= raw * 0.999);
    if (integer) step = Math.max(1, Math.round(step));
    const values = [];
    for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k += 1) values.push(k * step);
    return values;
  }

  // A line per series against `axis.xs`, drawn at the card's width like the histogram. Each line
  // is one <path> (and its dots one more), so 1,000 points cost two nodes, not 2,000.
  function lineChart(holder, { title, axis, series, yRange, note }) {
    const width = Math.max(holder.clientWidth || 880, 360);
    const height = 280;
    const margin = { left: 52, right: 20, top: 12, bottom: 46 };
    const plotWidth = width - margin.left - margin.right;
    const plotHeight = height - margin.top - margin.bottom;
    let x0 = Math.min(...axis.xs);
    let x1 = Math.max(...axis.xs);
    if (x0 === x1) [x0, x1] = [x0 - 1, x1 + 1];
    const [y0, y1] = yRange;
    const sx = (x) => margin.left + ((x - x0) / (x1 - x0)) * plotWidth;
    const sy = (y) => margin.top + (1 - (y - y0) / (y1 - y0)) * plotHeight;
    const svg = svgNode("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img", "aria-label": title });
    for (const y of ticks(y0, y1, 4)) {
      svg.append(
        svgNode("line", { class: "grid", x1: margin.left, x2: width - margin.right, y1: sy(y).toFixed(1), y2: sy(y).toFixed(1) }),
        svgNode("text", { class: "tick", x: margin.left - 6, y: (sy(y) + 4).toFixed(1), "text-anchor": "end" }, number(y)),
      );
    }
    const bottom = margin.top + plotHeight;
    for (const x of ticks(x0, x1, Math.max(2, Math.min(8, Math.floor(plotWidth / 90))), axis.integer)) {
      svg.append(
        svgNode("line", { class: "axis", x1: sx(x).toFixed(1), x2: sx(x).toFixed(1), y1: bottom, y2: bottom + 5 }),
        svgNode("text", { class: "tick", x: sx(x).toFixed(1), y: bottom + 18, "text-anchor": "middle" }, number(x)),
      );
    }
    svg.append(
      svgNode("line", { class: "axis", x1: margin.left, x2: width - margin.right, y1: bottom, y2: bottom }),
      svgNode("text", { class: "axis-label", x: margin.left + plotWidth / 2, y: height - 6, "text-anchor": "middle" }, axis.label),
    );
    const legend = el("ul", null, "legend");
    series.forEach((line, i) => {
      let d = "";
      let dots = "";
      let drawing = false;
      line.values.forEach((value, j) => {
        if (value === null || value === undefined) {
          drawing = false; // a point without a value leaves a gap
          return;
        }
        const at = `${sx(axis.xs[j]).toFixed(1)} ${sy(value).toFixed(1)}`;
        d += `${drawing ? "L" : "M"}${at}`;
        dots += `M${at}h0`;
        drawing = true;
      });
      const path = svgNode("path", { class: `line series-${i}`, d });
      path.dataset.series = line.key;
      path.append(svgNode("title", {}, line.label));
      svg.append(path);
      if (line.values.length <= DOTS_UP_TO) svg.append(svgNode("path", { class: `dots series-${i}`, d: dots }));
      const item = el("li");
      item.append(el("span", null, `swatch series-${i}`), el("code", line.label));
      legend.append(item);
    });
    holder.replaceChildren(el("h3", title), svg, legend, el("p", note, "muted chart-note"));
    holder.hidden = false;
  }

  function strictlyMonotonic(values) {
    const up = values.every((v, i) => i === 0 || v > values[i - 1]);
    return up || values.every((v, i) => i === 0 || v < values[i - 1]);
  }

  // The x axis: the swept parameter's values when one parameter moves, one way; else the point index.
  function sweepAxis(task) {
    const points = task.results;
    const index = points.map((_, i) => i);
    const swept = Object.keys(task.parameters || {}).filter((name) => Array.isArray(task.parameters[name]));
    if (swept.length === 1) {
      const xs = points.map((point) => point.parameters[swept[0]]);
      if (strictlyMonotonic(xs)) return { xs, label: swept[0], note: "" };
      return { xs: index, label: "point", integer: true, note: ` The values of ${swept[0]} do not run one way, so the x axis is the point index.` };
    }
    return { xs: index, label: "point", integer: true, note: ` Several parameters move (${swept.join(", ")}), so the x axis is the point index.` };
  }

  function sweepCharts(task) {
    const points = task.results;
    const axis = sweepAxis(task);
    const totals = {};
    for (const point of points) {
      for (const key in point.counts || {}) totals[key] = (totals[key] || 0) + point.counts[key];
    }
    const { best, outcomes } = topOutcomes(totals, SWEEP_OUTCOMES);
    const countsHolder = document.getElementById("sweep-counts");
    if (best.length) {
      const shown = outcomes > best.length
        ? `The ${best.length} most frequent of ${COUNT.format(outcomes)} outcomes over the whole sweep`
        : `All ${best.length} outcomes`;
      lineChart(countsHolder, {
        title: "Outcome probabilities",
        axis,
        yRange: [0, 1],
        series: best.map(({ key }) => ({
          key,
          label: key,
          values: points.map((point) => (point.counts ? (point.counts[key] || 0) / task.shots : null)),
        })),
        note: `${shown}, each as count / shots (${COUNT.format(task.shots)} shots at each of ` +
          `${COUNT.format(points.length)} points).${axis.note}`,
      });
    }
    const observables = task.observables || [];
    if (observables.length) {
      const charted = observables.slice(0, MAX_LINES);
      const series = charted.map((observable, i) => ({
        key: String(i),
        label: observableLabel(observable),
        values: points.map((point) => (point.expectation_values ? point.expectation_values[i] : null)),
      }));
      const largest = Math.max(1, ...series.flatMap((line) => line.values.map((v) => Math.abs(v ?? 0))));
      const more = observables.length > charted.length ? ` The first ${charted.length} of ${observables.length} observables.` : "";
      lineChart(document.getElementById("sweep-expectations"), {
        title: "Expectation values",
        axis,
        yRange: [-largest, largest],
        series,
        note: `Exact values at each of ${COUNT.format(points.length)} points.${more}${axis.note}`,
      });
    }
    document.getElementById("sweep-section").hidden = false;
  }

  function expectationTable(task) {
    const rows = task.observables.map((observable, i) => {
      const row = document.createElement("tr");
      const value = task.expectation_values[i];
      const cell = el("td", expectationText(value, observable), "number");
      cell.title = String(value);
      row.append(el("td", observableLabel(observable)), cell);
      return row;
    });
    document.querySelector("#expectation-values tbody").replaceChildren(...rows);
    document.getElementById("expectation-section").hidden = false;
  }

  // Every shot's outcome can be 100,000 lines: offered as a file, built here, never put on the page.
  function memoryDownload(task) {
    let content;
    let summary;
    if (Array.isArray(task.memory)) {
      content = task.memory;
      summary = `${COUNT.format(content.length)} outcomes, in shot order`;
    } else if (task.results && task.results.some((point) => point.memory)) {
      content = task.results.map((point) => ({ parameters: point.parameters, memory: point.memory || [] }));
      const outcomes = content.reduce((sum, point) => sum + point.memory.length, 0);
      summary = `${COUNT.format(outcomes)} outcomes over ${COUNT.format(content.length)} points, in shot order`;
    } else {
      return;
    }
    const link = document.getElementById("memory-download");
    const blob = new Blob([JSON.stringify(content)], { type: "application/json" });
    link.href = URL.createObjectURL(blob);
    link.download = `${task.task_id}-memory.json`;
    link.textContent = "Download (JSON)";
    link.title = link.download;
    document.getElementById("memory-summary").textContent = summary;
    document.getElementById("memory-section").hidden = false;
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
    let charted = false;
    let finished = false;
    let timer = null;

    async function refresh() {
      const { status, body } = await api(`/tasks/${encodeURIComponent(taskId)}`);
      const state = document.getElementById("status");
      const error = document.getElementById("task-error");
      if (status !== 200) {
        state.replaceChildren(el("span", describeError(body, status), "error"));
        // No answer, or the service unavailable for a moment: the next refresh asks again.
        if (status !== 0 && status < 500) clearInterval(timer);
        return;
      }
      state.replaceChildren(statusNode(body.status));
      state.dataset.status = body.status;
      if (body.cancel_requested) state.append(el("span", " (cancel requested)", "muted"));
      cancel.hidden = TERMINAL.has(body.status);
      renderFacts(body);
      error.hidden = !body.error;
      error.textContent = body.error || "";
      if (body.result && !charted) {
        document.getElementById("result-section").hidden = false;
        histogram(body.result, body.shots);
        charted = true;
      }
      if (body.status === "completed" && !finished) {
        if (body.results) sweepCharts(body);
        if (body.observables && body.expectation_values) expectationTable(body);
        memoryDownload(body);
        finished = true;
      }
      if (!drawn && (body.num_qubits !== undefined || TERMINAL.has(body.status))) drawn = await loadCircuit(taskId);
      if (TERMINAL.has(body.status)) clearInterval(timer);
    }

    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      const { status, body } = await api(`/tasks/${encodeURIComponent(taskId)}/cancel`, { method: "POST" });
      if ((status === 0 || status >= 400) && status !== 409) {
        const error = document.getElementById("task-error");
        error.textContent = describeError(body, status);
        error.hidden = false;
      }
      cancel.disabled = false;
      refresh();
    });
    loadCircuit(taskId);
    refresh();
    timer = setInterval(refresh, 1000);
  }

  return {
    indexPage, taskPage, histogram, duration, number, observableLabel,
    // For the batch page (batch.js).
    api, el, describeError, timeNode, statusNode, svgNode, tagList, COUNT, PERCENT, TERMINAL,
  };
})();

// No inline script (the pages' Content-Security-Policy forbids it): each page names itself instead.
if (document.body.dataset.page === "index") QTQ.indexPage();
if (document.body.dataset.page === "task") QTQ.taskPage();

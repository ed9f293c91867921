// The batch page: progress by state, the batch's tags, its tasks in request order, and Cancel.
// Uses app.js's helpers (QTQ); like every page, it writes what users typed with textContent only.
"use strict";

(() => {
  const { api, el, describeError, timeNode, statusNode, svgNode, tagList, COUNT, PERCENT } = QTQ;
  // Each item is a full task view, results included: a page holds fewer than the list's 50.
  const PAGE_SIZE = 20;
  // GET /batches/{id}?wait= answers only once the batch is done, and the bar should move before
  // that: while the batch runs, the page asks every second, as the task page does.
  const REFRESH_MS = 1000;
  // Finished states first, so the bar fills from the left as the batch runs.
  const ORDER = ["completed", "failed", "cancelled", "pending", "submitted"];
  const BAR_WIDTH = 1000; // the SVG's own units; it is drawn at the card's width

  function share(count, total) {
    return `${PERCENT.format((count / total) * 100)}%`;
  }

  function progressBar(batch) {
    const svg = svgNode("svg", {
      class: "progress-bar", viewBox: `0 0 ${BAR_WIDTH} 20`, preserveAspectRatio: "none",
      width: "100%", height: 20, role: "img",
      "aria-label": ORDER.map((state) => `${state} ${batch.states[state] || 0}`).join(", "),
    });
    svg.append(svgNode("rect", { class: "track", x: 0, y: 0, width: BAR_WIDTH, height: 20 }));
    const legend = el("ul", null, "legend");
    let x = 0;
    for (const state of ORDER) {
      const count = batch.states[state] || 0;
      const item = el("li");
      item.dataset.state = state;
      item.append(el("span", null, `swatch fill-${state}`), el("span", `${state} ${COUNT.format(count)}`));
      legend.append(item);
      if (!count) continue;
      const width = (count / batch.total) * BAR_WIDTH;
      const segment = svgNode("rect", { class: `segment fill-${state}`, x: x.toFixed(2), y: 0, width: width.toFixed(2), height: 20 });
      segment.dataset.state = state;
      segment.dataset.count = String(count);
      segment.append(svgNode("title", {}, `${state}: ${COUNT.format(count)} of ${COUNT.format(batch.total)} (${share(count, batch.total)})`));
      svg.append(segment);
      x += width;
    }
    return [svg, legend];
  }

  // The most frequent outcome of a run, the number of points of a sweep, or the error.
  function outcome(task) {
    if (task.error) {
      const node = el("span", task.error, "error outcome");
      node.title = task.error;
      return node;
    }
    if (task.results) return `${COUNT.format(task.results.length)} points`;
    if (!task.result) return "";
    let best = null;
    let outcomes = 0;
    for (const key in task.result) {
      outcomes += 1;
      const count = task.result[key];
      if (best === null || count > best.count || (count === best.count && key < best.key)) best = { key, count };
    }
    const node = el("span", `${best.key}: ${COUNT.format(best.count)}`, "outcome");
    node.title = `The most frequent of ${COUNT.format(outcomes)} outcome(s), ${COUNT.format(best.count)} of ${COUNT.format(task.shots)} shots`;
    return node;
  }

  function batchPage() {
    const batchId = decodeURIComponent(window.location.pathname.split("/").pop());
    const cancel = document.getElementById("cancel-button");
    const message = document.getElementById("batch-error");
    // Pages of tasks follow the API's cursors: `cursors` holds the cursor of each page after the first.
    const pages = { cursors: [], next: null, request: 0 };
    let batch = null;
    let timer = null;
    let refreshFailed = false;
    document.getElementById("batch-id").textContent = batchId;

    function showError(text) {
      message.textContent = text;
      message.hidden = !text;
    }

    function render() {
      const finished = (batch.states.completed || 0) + (batch.states.failed || 0) + (batch.states.cancelled || 0);
      const state = document.getElementById("batch-status");
      state.replaceChildren(
        el("span", batch.done ? "done" : "running", `status status-${batch.done ? "completed" : "pending"}`),
        el("span", ` · ${COUNT.format(finished)} of ${COUNT.format(batch.total)} tasks finished`, "muted"),
      );
      state.dataset.done = String(batch.done);
      cancel.disabled = batch.done;
      const progress = document.getElementById("progress");
      progress.replaceChildren(...progressBar(batch));
      progress.hidden = false;
      const facts = [
        ["Owner", batch.owner], // shown to admin keys only
        ["Tasks", COUNT.format(batch.total)],
        ["Submitted", timeNode(batch.created_at)],
        ["Finished", batch.finished_at && timeNode(batch.finished_at)],
        ["Tags", batch.tags && tagList(batch.tags, false)],
      ];
      document.getElementById("facts").replaceChildren(...facts.filter(([, value]) => value).flatMap(([name, value]) => {
        const dd = el("dd");
        dd.append(value);
        return [el("dt", name), dd];
      }));
    }

    async function refreshBatch() {
      const { status, body } = await api(`/batches/${encodeURIComponent(batchId)}`);
      if (status === 404) {
        document.getElementById("batch-status").replaceChildren(el("span", "Batch not found", "error"));
        cancel.hidden = true;
        return false;
      }
      if (status === 401) return false; // the page asks for a key instead (auth.js)
      if (status !== 200) {
        showError(describeError(body, status));
        refreshFailed = true;
        return true; // try again at the next refresh
      }
      if (refreshFailed) showError(""); // the message of a failed refresh, not a cancel's
      refreshFailed = false;
      batch = body;
      render();
      return true;
    }

    async function loadTasks() {
      const request = ++pages.request;
      const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
      const cursor = pages.cursors.at(-1);
      if (cursor) query.set("cursor", cursor);
      const { status, body } = await api(`/batches/${encodeURIComponent(batchId)}/tasks?${query}`);
      // A page change started a newer request: this answer is for a page no longer shown.
      if (request !== pages.request || status !== 200) return;
      const first = pages.cursors.length * PAGE_SIZE;
      const rows = body.items.map((task, i) => {
        const row = document.createElement("tr");
        const link = el("a", task.task_id.slice(0, 8), "task-link");
        link.href = `/ui/tasks/${encodeURIComponent(task.task_id)}`;
        link.title = task.task_id;
        const cells = [COUNT.format(first + i + 1), link, statusNode(task.status), COUNT.format(task.shots),
          task.num_qubits ?? "", timeNode(task.finished_at), outcome(task)];
        row.append(...cells.map((cell, j) => {
          const td = el("td", null, j === 0 ? "number" : null);
          td.append(cell instanceof Node ? cell : String(cell));
          return td;
        }));
        return row;
      });
      document.querySelector("#batch-tasks tbody").replaceChildren(...rows);
      pages.next = body.next_cursor ?? null;
      const total = batch ? ` of ${COUNT.format(batch.total)}` : "";
      document.getElementById("page-info").textContent = rows.length
        ? `Tasks ${COUNT.format(first + 1)}–${COUNT.format(first + rows.length)}${total}, in request order`
        : "";
      document.getElementById("previous-button").disabled = pages.cursors.length === 0;
      document.getElementById("next-button").disabled = pages.next === null;
      document.getElementById("tasks-section").hidden = false;
    }

    // The counts first, then the page of tasks: once the batch reads done, the tasks read final too.
    async function tick() {
      clearTimeout(timer);
      if (!(await refreshBatch())) return;
      await loadTasks();
      if (!batch || !batch.done) timer = setTimeout(tick, REFRESH_MS);
    }

    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      showError("");
      const { status, body } = await api(`/batches/${encodeURIComponent(batchId)}/cancel`, { method: "POST" });
      if (status === 200) {
        batch = body;
        render();
      } else {
        showError(describeError(body, status));
        cancel.disabled = false;
      }
      tick(); // running tasks stop within about a second: follow them until the batch is done
    });
    document.getElementById("next-button").addEventListener("click", () => {
      if (pages.next) pages.cursors.push(pages.next);
      loadTasks();
    });
    document.getElementById("previous-button").addEventListener("click", () => {
      pages.cursors.pop();
      loadTasks();
    });
    tick();
  }

  if (document.body.dataset.page === "batch") batchPage();
})();

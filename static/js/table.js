// The invocations table (virtualised: only the rows in view exist, each of a fixed height)
// and the log panel for the selected call, as CloudWatch shows it.

import { callCost, fmtMicro, fmtUsd, gbSeconds } from "./billing.js";
import { ENDED, shortId } from "./model.js";
import { esc, fmtMs } from "./timeline.js";

const ROW_H = 32;
const HEAD_H = 34;
const OVERSCAN = 4;

const COLUMNS = [
  ["#", "num"],
  ["Request ID", "rid"],
  ["Environment", "env"],
  ["Cold / warm", "temp"],
  ["Why", "why"],
  ["Duration", "dur"],
  ["Billed", "billed"],
  ["Cost", "cost"],
  ["Memory used", "mem"],
  ["Status", "status"],
  ["Response", "resp"],
];

const HEAD_TITLES = {
  mem: "Max memory used / memory size",
  cost: "On Lambda (us-east-1, x86): the request + billed duration × memory; µ$ = millionths of a dollar",
};

/** What a call cost, and how: the request, its billed duration × memory, its Init if cold. */
export function costWords(inv) {
  const cost = callCost(inv);
  if (cost == null) return "–";
  const gbS = gbSeconds(inv.memory_mb, inv.billed_duration_ms);
  const init = inv.cold && inv.init_duration_ms ? `, Init ${fmtMs(inv.init_duration_ms)} included (billed since Aug 2025)` : "";
  return `${fmtUsd(cost)}: request $0.0000002 + ${inv.billed_duration_ms} ms × ${inv.memory_mb} MB = ${gbS.toPrecision(3)} GB-s${init}`;
}

/** The cold/warm badge: a word and an icon, never colour alone. */
export function temperature(inv) {
  if (!ENDED.has(inv.status) && inv.status !== "running") return `<span class="temp pending">· waiting</span>`;
  if (inv.cold == null || (!inv.environment && inv.status !== "running")) return `<span class="temp none">— none</span>`;
  return inv.cold
    ? `<span class="temp cold"><span aria-hidden="true">❄</span> cold</span>`
    : `<span class="temp warm"><span aria-hidden="true">♨</span> warm</span>`;
}

export function whyText(inv) {
  if (inv.cold) return inv.init_reason_text || "a new environment was needed";
  if (inv.cold === false && inv.init_reason_text) return `reused, but Init ran again: ${inv.init_reason_text}`;
  if (inv.cold === false) return "reused a frozen environment";
  return "";
}

function statusCell(inv) {
  if (inv.status === "queued") return `<span class="st queued">queued</span>`;
  if (inv.status === "running") return `<span class="st running">running…</span>`;
  if (inv.status === "success") return `<span class="st ok">✓ success</span>`;
  return `<span class="st err">✕ <b>${esc(inv.error_type || inv.status)}</b></span>`;
}

function oneLine(text) {
  return String(text ?? "").replace(/\s+/g, " ").trim();
}

export class InvocationTable {
  constructor(root, { model, onSelect, now }) {
    this.model = model;
    this.onSelect = onSelect;
    this.now = now;
    this.selected = null;
    this.rows = new Map(); // request id → row element in the DOM
    root.innerHTML = `
      <div class="inv-scroll" role="grid" aria-label="Invocations, newest first" aria-rowcount="1" tabindex="-1">
        <div class="inv-row inv-head" role="row" aria-rowindex="1">
          ${COLUMNS.map(([label, cls]) => `<span role="columnheader" class="c-${cls}"${HEAD_TITLES[cls] ? ` title="${HEAD_TITLES[cls]}"` : ""}>${label}</span>`).join("")}
        </div>
        <div class="inv-body" role="rowgroup"></div>
        <p class="inv-empty">No invocations yet. Each call you make shows up here, newest first.</p>
      </div>`;
    this.scroll = root.querySelector(".inv-scroll");
    this.body = root.querySelector(".inv-body");
    this.empty = root.querySelector(".inv-empty");
    this.scroll.addEventListener("scroll", () => this._schedule(), { passive: true });
    new ResizeObserver(() => this._schedule()).observe(this.scroll);
    this.body.addEventListener("click", (e) => {
      const row = e.target.closest(".inv-row[data-rid]");
      if (row) this.onSelect(row.dataset.rid, { from: "table" });
    });
    this.body.addEventListener("keydown", (e) => this._key(e));
  }

  _schedule() {
    if (this.pending) return;
    this.pending = requestAnimationFrame(() => {
      this.pending = 0;
      this.render();
    });
  }

  select(requestId, { reveal = false } = {}) {
    this.selected = requestId;
    if (reveal) this._reveal(requestId);
    this.render();
  }

  _reveal(requestId) {
    const index = this.model.order.indexOf(requestId);
    if (index < 0) return;
    const y = HEAD_H + index * ROW_H;
    const view = this.scroll;
    if (y < view.scrollTop + HEAD_H) view.scrollTop = y - HEAD_H;
    else if (y + ROW_H > view.scrollTop + view.clientHeight) view.scrollTop = y + ROW_H - view.clientHeight;
  }

  render() {
    const order = this.model.order;
    this.empty.hidden = order.length > 0;
    this.scroll.setAttribute("aria-rowcount", String(order.length + 1));
    this.body.style.height = `${order.length * ROW_H}px`;
    const first = Math.max(0, Math.floor((this.scroll.scrollTop - HEAD_H) / ROW_H) - OVERSCAN);
    const last = Math.min(order.length, Math.ceil((this.scroll.scrollTop + this.scroll.clientHeight) / ROW_H) + OVERSCAN);
    const keep = new Set();
    const focusTarget = this.selected && order.includes(this.selected) ? this.selected : order[0];
    for (let i = first; i < last; i++) {
      const id = order[i];
      const inv = this.model.get(id);
      keep.add(id);
      let row = this.rows.get(id);
      if (!row) {
        row = document.createElement("div");
        row.className = "inv-row";
        row.setAttribute("role", "row");
        row.dataset.rid = id;
        this.rows.set(id, row);
        this.body.append(row);
      }
      row.style.transform = `translateY(${i * ROW_H}px)`;
      row.setAttribute("aria-rowindex", String(i + 2));
      row.setAttribute("aria-selected", String(id === this.selected));
      row.tabIndex = id === focusTarget ? 0 : -1;
      row.classList.toggle("cold", Boolean(inv.cold));
      row.classList.toggle("failed", ENDED.has(inv.status) && inv.status !== "success");
      const html = this._cells(inv);
      if (row._html !== html) {
        row.innerHTML = html;
        row._html = html;
      }
    }
    for (const [id, row] of this.rows) {
      if (!keep.has(id) && row !== document.activeElement) {
        row.remove();
        this.rows.delete(id);
      }
    }
  }

  _cells(inv) {
    const dur =
      inv.status === "running" && inv.started
        ? "…"
        : fmtMs(inv.duration_ms) + (inv.cold && inv.init_duration_ms ? ` <small>+ Init ${fmtMs(inv.init_duration_ms)}</small>` : "");
    const mem = inv.max_memory_used_mb != null ? `${inv.max_memory_used_mb} / ${inv.memory_mb ?? "–"} MB` : "–";
    const lane = inv.environment ? this.model.lanes.get(inv.environment) : null;
    const env = inv.environment
      ? `<span title="environment ${esc(inv.environment)}${lane?.instance ? ` · instance ${esc(lane.instance)}` : ""}">${esc(shortId(inv.environment, 6))}</span>`
      : "–";
    const response = inv.response ? oneLine(inv.response) : "";
    return [
      `<span role="gridcell" class="c-num">${inv.n}</span>`,
      `<span role="gridcell" class="c-rid"><code title="${esc(inv.request_id)}">${esc(shortId(inv.request_id))}</code></span>`,
      `<span role="gridcell" class="c-env">${env}</span>`,
      `<span role="gridcell" class="c-temp">${temperature(inv)}</span>`,
      `<span role="gridcell" class="c-why" title="${esc(whyText(inv))}">${esc(whyText(inv))}</span>`,
      `<span role="gridcell" class="c-dur">${dur}</span>`,
      `<span role="gridcell" class="c-billed">${inv.billed_duration_ms != null ? `${inv.billed_duration_ms} ms` : "–"}</span>`,
      `<span role="gridcell" class="c-cost" title="${esc(costWords(inv))}">${fmtMicro(callCost(inv))}</span>`,
      `<span role="gridcell" class="c-mem">${mem}</span>`,
      `<span role="gridcell" class="c-status" title="${esc(inv.error_type || inv.status)}">${statusCell(inv)}</span>`,
      `<span role="gridcell" class="c-resp" title="${esc(response.slice(0, 300))}">${esc(response.slice(0, 200))}</span>`,
    ].join("");
  }

  _key(e) {
    const row = e.target.closest(".inv-row[data-rid]");
    if (!row) return;
    const order = this.model.order;
    let index = order.indexOf(row.dataset.rid);
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      this.onSelect(row.dataset.rid, { from: "table" });
      return;
    }
    const moves = { ArrowDown: 1, ArrowUp: -1, PageDown: 8, PageUp: -8, Home: -Infinity, End: Infinity };
    if (!(e.key in moves)) return;
    e.preventDefault();
    index = Math.max(0, Math.min(order.length - 1, index + moves[e.key]));
    const id = order[index];
    this.onSelect(id, { from: "table" });
    this._reveal(id);
    this.render();
    this.rows.get(id)?.focus({ preventScroll: true });
  }
}

// -- the log panel --------------------------------------------------------------------------

/** The console's error view: the type in bold, the message, the stack trace folded. */
function errorView(body) {
  const stack = Array.isArray(body.stackTrace) ? body.stackTrace.join("").replace(/\r/g, "\n") : "";
  return `
    <p class="err-type"><strong>${esc(body.errorType || "Error")}</strong></p>
    <p class="err-message">${esc(body.errorMessage || "")}</p>
    ${stack ? `<details class="stack"><summary>Stack trace</summary><pre>${esc(stack)}</pre></details>` : ""}`;
}

function responseView(inv) {
  const text = inv.response ?? "";
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    /* a preview cut at 1 KB, or not JSON: shown as it is */
  }
  const more = inv.response_truncated
    ? `<p class="note">Preview of ${inv.response_bytes?.toLocaleString() ?? "?"} bytes. <a href="/api/invocations/${esc(inv.request_id)}/response" target="_blank" rel="noopener">Open the full response</a></p>`
    : "";
  if (body && typeof body === "object" && !Array.isArray(body) && "errorType" in body && inv.status !== "success") {
    return errorView(body) + more;
  }
  if (inv.status !== "success" && !body && text) {
    return `<p class="err-type"><strong>${esc(inv.error_type || inv.status)}</strong></p><pre>${esc(text)}</pre>${more}`;
  }
  const pretty = body !== null ? JSON.stringify(body, null, 2) : text;
  return `<pre class="response-body">${esc(pretty || "(empty)")}</pre>${more}`;
}

/** The log lines as CloudWatch shows them: one per line, "\r" inside a line as a new line. */
export function logText(lines) {
  return (lines || []).map((line) => line.replace(/\r/g, "\n")).join("\n");
}

export class LogPanel {
  constructor(root, { model, fetchDetail }) {
    this.model = model;
    this.fetchDetail = fetchDetail;
    this.current = null;
    this.loading = new Set();
    root.innerHTML = `
      <div class="log-head">
        <h2 id="log-title">Log</h2>
        <div class="log-actions">
          <button type="button" id="copy-log" disabled>Copy log</button>
          <button type="button" id="download-log" disabled>Download log</button>
          <span class="copied" role="status" aria-live="polite"></span>
        </div>
      </div>
      <div class="log-body"><p class="note">Select an invocation (a row above, or a bar on the timeline) to see its log.</p></div>`;
    this.title = root.querySelector("#log-title");
    this.bodyEl = root.querySelector(".log-body");
    this.copyBtn = root.querySelector("#copy-log");
    this.downloadBtn = root.querySelector("#download-log");
    this.copied = root.querySelector(".copied");
    this.copyBtn.addEventListener("click", () => this.copy());
    this.downloadBtn.addEventListener("click", () => this.download());
  }

  show(requestId) {
    this.current = requestId;
    this.render();
  }

  render() {
    const inv = this.current ? this.model.get(this.current) : null;
    if (!inv) return;
    const ended = ENDED.has(inv.status);
    if (ended && !inv.logsComplete && !this.loading.has(inv.request_id)) this._load(inv);
    const key = `${inv.request_id}:${inv.status}:${inv.logs?.length ?? -1}:${inv.logsComplete}`;
    if (this.renderedKey === key) return;
    this.renderedKey = key;
    this.title.innerHTML = `Log · call #${inv.n} <code title="${esc(inv.request_id)}">${esc(shortId(inv.request_id))}</code>`;
    this.copyBtn.disabled = this.downloadBtn.disabled = !inv.logs?.length;
    const lane = inv.environment ? this.model.lanes.get(inv.environment) : null;
    const summary = [
      ["Request ID", `<code>${esc(inv.request_id)}</code>`],
      ["Environment", inv.environment ? `<code>${esc(shortId(inv.environment, 6))}</code>${lane?.instance ? ` · instance <code>${esc(lane.instance)}</code>` : ""}` : "none"],
      ["Cold / warm", `${temperature(inv)} ${esc(whyText(inv))}`],
      ["Duration", fmtMs(inv.duration_ms)],
      ["Billed duration", inv.billed_duration_ms != null ? `${inv.billed_duration_ms} ms` : "–"],
      ["Resources configured", inv.memory_mb ? `${inv.memory_mb} MB` : "–"],
      ["Max memory used", inv.max_memory_used_mb != null ? `${inv.max_memory_used_mb} MB` : "–"],
      ["Init duration", inv.init_duration_ms ? fmtMs(inv.init_duration_ms) : "–"],
      ["Cost on Lambda", esc(costWords(inv))],
    ];
    const logs = inv.logs?.length
      ? `<pre class="log" tabindex="0" aria-label="Function logs">${esc(logText(inv.logs))}</pre>`
      : `<p class="note">${ended ? "Loading the log…" : "Waiting for the call to start…"}</p>`;
    this.bodyEl.innerHTML = `
      <dl class="summary">${summary.map(([k, v]) => `<div><dt>${k}</dt><dd>${v}</dd></div>`).join("")}</dl>
      <h3>Response</h3>
      ${ended ? responseView(inv) : `<p class="note">${inv.status === "running" ? "Running…" : "Queued…"}</p>`}
      <h3>Function logs ${inv.log_truncated ? "<small>(truncated at 256 KB)</small>" : ""}</h3>
      ${logs}`;
  }

  async _load(inv) {
    this.loading.add(inv.request_id);
    try {
      const full = await this.fetchDetail(inv.request_id);
      inv.logs = full.logs || [];
      inv.response = full.response;
      inv.response_truncated = false;
      inv.log_truncated = full.log_truncated;
      inv.logsComplete = true;
    } catch (err) {
      inv.logs = inv.logs || [];
      inv.logsComplete = true; // shown as it is; do not retry in a loop
      console.warn("could not load the log of", inv.request_id, err);
    } finally {
      this.loading.delete(inv.request_id);
      if (this.current === inv.request_id) {
        this.renderedKey = null;
        this.render();
      }
    }
  }

  text() {
    const inv = this.current ? this.model.get(this.current) : null;
    return inv ? logText(inv.logs) + "\n" : "";
  }

  async copy() {
    const text = this.text();
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      const area = Object.assign(document.createElement("textarea"), { value: text });
      document.body.append(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    this.copied.textContent = "Copied";
    setTimeout(() => (this.copied.textContent = ""), 2000);
  }

  download() {
    const inv = this.model.get(this.current);
    if (!inv) return;
    const url = URL.createObjectURL(new Blob([this.text()], { type: "text/plain" }));
    const link = Object.assign(document.createElement("a"), { href: url, download: `${inv.request_id}.log` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }
}

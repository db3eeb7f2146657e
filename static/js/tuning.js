// The power tuning panel: pick memory sizes and calls per size, run them (POST .../tunings),
// follow the progress (the stream's tune.progress and tune.end events, and a bounded poll of
// the tuning in case an event is missed or its worker died), then a chart drawn in SVG:
// duration and cost per call at each size, the fastest, the cheapest and the best balance.

import { fmtMicro, fmtUsd } from "./billing.js";
import { esc, fmtMs } from "./timeline.js";

const CHOICES = [128, 256, 512, 1024, 1536, 1769, 2048, 3008, 4096, 10240];
const POLL_MS = 2_000; // while a tuning runs: the events drive it, this only backs them up
const SVG = "http://www.w3.org/2000/svg";

export class PowerTuning {
  constructor(root, { functionId, api, boot, beforeRun, signals }) {
    this.functionId = functionId;
    this.api = api;
    this.boot = boot;
    this.beforeRun = beforeRun;
    this.signals = signals;
    this.state = null;
    this.fetching = false;
    this.poller = null;
    const choices = [...new Set([...CHOICES, ...boot.sizes])].filter((s) => s <= boot.max_memory_mb).sort((a, b) => a - b);
    root.innerHTML = `
      <h2 id="tuning-title">Power tuning <small>duration and cost per call at each memory size</small></h2>
      <p class="explain">Runs your handler at each memory size you pick, some calls in a row at each, in
        environments of their own (the first call at each size is cold), then shuts them down. More memory
        buys more CPU (1,769 MB is one whole vCPU), so a call can get faster, and sometimes cheaper too.</p>
      <form class="tune-form" novalidate>
        <fieldset class="tune-sizes" aria-describedby="err-tune-sizes">
          <legend>Memory sizes (MB), at most ${boot.max_sizes}</legend>
          ${choices
            .map(
              (size) =>
                `<label class="check"><input type="checkbox" name="size" value="${size}"${boot.sizes.includes(size) ? " checked" : ""}> ${size.toLocaleString("en")}</label>`,
            )
            .join("")}
          <label class="other" for="tune-other">other</label>
          <input id="tune-other" type="text" inputmode="numeric" placeholder="e.g. 768" size="9"
                 aria-describedby="hint-tune-other err-tune-sizes">
          <small id="hint-tune-other">128–${boot.max_memory_mb.toLocaleString("en")}, commas between</small>
        </fieldset>
        <div class="tune-run">
          <label for="tune-count">Calls per size</label>
          <input id="tune-count" type="number" inputmode="numeric" min="1" max="${boot.max_count}" step="1"
                 value="${boot.count}" aria-describedby="err-tune-count">
          <button type="submit" class="primary" id="tune-start">Power tuning</button>
        </div>
        <p class="field-error" id="err-tune-sizes" aria-live="polite"></p>
        <p class="field-error" id="err-tune-count" aria-live="polite"></p>
      </form>
      <div class="tune-progress" hidden>
        <progress max="1" value="0" aria-labelledby="tune-status"></progress>
        <span id="tune-status" role="status" aria-live="polite"></span>
      </div>
      <div class="tune-result"></div>`;
    this.form = root.querySelector("form");
    this.startButton = root.querySelector("#tune-start");
    this.progressBox = root.querySelector(".tune-progress");
    this.bar = root.querySelector("progress");
    this.status = root.querySelector("#tune-status");
    this.result = root.querySelector(".tune-result");
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.start();
    });
    this.form.addEventListener("input", () => this.clearErrors());
    if (boot.last) this.show(boot.last);
  }

  // -- asking -----------------------------------------------------------------------------

  read() {
    const sizes = [...this.form.querySelectorAll("input[name=size]:checked")].map((box) => Number(box.value));
    const other = this.form.querySelector("#tune-other").value.trim();
    if (other) {
      for (const part of other.split(/[\s,]+/).filter(Boolean)) {
        const size = Number(part);
        if (!Number.isInteger(size) || size < 128 || size > this.boot.max_memory_mb) {
          return { error: ["sizes", `"${part}": a size is a whole number of MB from 128 to ${this.boot.max_memory_mb.toLocaleString("en")}`] };
        }
        if (!sizes.includes(size)) sizes.push(size);
      }
    }
    if (!sizes.length) return { error: ["sizes", "Pick at least one memory size"] };
    if (sizes.length > this.boot.max_sizes) {
      return { error: ["sizes", `At most ${this.boot.max_sizes} sizes: ${sizes.length} are picked`] };
    }
    const count = Number(this.form.querySelector("#tune-count").value);
    if (!Number.isInteger(count) || count < 1 || count > this.boot.max_count) {
      return { error: ["count", `Calls per size: a whole number from 1 to ${this.boot.max_count}`] };
    }
    return { sizes: sizes.sort((a, b) => a - b), count };
  }

  showError(field, message) {
    const el = this.form.querySelector(`#err-tune-${field}`) || this.form.querySelector("#err-tune-sizes");
    el.textContent = message;
    const input = field === "count" ? this.form.querySelector("#tune-count") : this.form.querySelector("#tune-other");
    input.setAttribute("aria-invalid", "true");
  }

  clearErrors() {
    for (const el of this.form.querySelectorAll(".field-error")) el.textContent = "";
    for (const el of this.form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  }

  async start() {
    this.clearErrors();
    const asked = this.read();
    if (asked.error) {
      this.showError(...asked.error);
      return;
    }
    this.startButton.disabled = true;
    try {
      if (!(await this.beforeRun())) return; // unsaved code that cannot be saved: said by its field
      this.show(await this.api("POST", `/api/functions/${this.functionId}/tunings`, asked));
    } catch (err) {
      if (err.field === "sizes" || err.field === "count") this.showError(err.field, err.message);
      else this.showError("sizes", `${err.type ? `${err.type}: ` : ""}${err.message}`);
    } finally {
      this.startButton.disabled = this.running();
    }
  }

  running() {
    return Boolean(this.state) && ["queued", "running"].includes(this.state.status);
  }

  // -- following ---------------------------------------------------------------------------

  /** An event from the function's stream (tune.progress, tune.end): the bar moves at once, the
   * figures of the sizes that ended come from the API. */
  receive(ev) {
    if (this.state && ev.tune === this.state.id && this.running() && ev.done > this.state.done) {
      this.state.done = ev.done;
      this.renderProgress(ev.size);
    }
    this.refresh(ev.tune); // or a tuning started elsewhere (another tab): shown all the same
  }

  async refresh(tuneId) {
    if (!tuneId) return;
    if (this.fetching) {
      this.again = tuneId; // read once more when this read is back: the last event must count
      return;
    }
    this.fetching = true;
    try {
      this.show(await this.api("GET", `/api/functions/${this.functionId}/tunings/${tuneId}`));
    } catch (err) {
      console.warn("could not read the tuning", tuneId, err);
    } finally {
      this.fetching = false;
      const again = this.again;
      this.again = null;
      if (again) this.refresh(again);
    }
  }

  show(state) {
    this.state = state;
    const running = this.running();
    this.startButton.disabled = running;
    clearInterval(this.poller);
    this.poller = running ? setInterval(() => this.refresh(state.id), POLL_MS) : null;
    this.renderProgress();
    this.render();
    this.signals.tuning = { id: state.id, status: state.status, done: state.done, total: state.total };
  }

  renderProgress(size) {
    const s = this.state;
    this.progressBox.hidden = false;
    this.bar.max = s.total;
    this.bar.value = s.done;
    const current = size ?? s.results.find((r) => r.status === "running")?.memory_mb;
    const failed = s.results.filter((r) => r.status === "error").length;
    this.status.className = s.status === "failed" ? "failed" : "";
    this.status.textContent = {
      queued: `Queued: ${s.total} calls at ${s.sizes.length} sizes…`,
      running: `${s.done} of ${s.total} calls done${current ? ` · now at ${current.toLocaleString("en")} MB` : ""}`,
      done: `Done: ${s.total} calls at ${s.sizes.length} sizes${failed ? ` (${failed} with errors)` : ""}, ${fmtUsd(totalCost(s))} in all on Lambda.`,
      failed: `Failed after ${s.done} of ${s.total} calls: ${s.error || "unknown error"}`,
    }[s.status];
  }

  // -- the result --------------------------------------------------------------------------

  render() {
    const s = this.state;
    const ended = s.results.filter((r) => r.status === "ok" || r.status === "error");
    if (!ended.length) {
      this.result.innerHTML = "";
      return;
    }
    this.result.innerHTML = `
      ${s.status === "done" ? `<p class="verdict">${verdict(s)}</p>` : ""}
      <figure class="tune-figure">
        ${chart(s)}
        <figcaption>Duration: the median of the warm calls at each size. Cost per call: the request and a warm
          call's billed duration × memory (µ$: millionths of a dollar, the same figure as dollars per
          million calls). A cold start also bills its Init, once per new environment: in the table.</figcaption>
      </figure>
      ${table(s)}`;
  }
}

function totalCost(s) {
  return s.results.reduce((sum, r) => sum + (r.total_cost_usd || 0), 0);
}

/** "1,769 MB: fastest; 512 MB: cheapest and best balance." */
function verdict(s) {
  if (s.fastest == null) return "No size ran without errors: nothing to compare.";
  const words = new Map();
  for (const [size, word] of [
    [s.fastest, "fastest"],
    [s.cheapest, "cheapest"],
    [s.balanced, "best balance"],
  ]) {
    words.set(size, [...(words.get(size) || []), word]);
  }
  return (
    [...words]
      .map(([size, w]) => `<b>${esc(size.toLocaleString("en"))} MB</b>: ${esc(andList(w))}`)
      .join("; ") + "."
  );
}

/** A round step for an axis of four: 1, 2, 2.5 or 5 times a power of ten, so that four of them
 * reach ``value``. */
function niceStep(value) {
  if (!(value > 0)) return 0.25;
  const quarter = value / 4;
  const power = 10 ** Math.floor(Math.log10(quarter));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= quarter) return step * power;
  return 10 * power;
}

function tickLabel(value) {
  return value.toLocaleString("en", { maximumFractionDigits: 3 });
}

/** The chart: x the sizes (in order, evenly spaced), duration on the left axis, cost on the right. */
export function chart(s) {
  const W = 760;
  const H = 330;
  const m = { left: 62, right: 70, top: 34, bottom: 78 };
  const plotW = W - m.left - m.right;
  const plotH = H - m.top - m.bottom;
  const results = s.results;
  const ok = results.filter((r) => r.status === "ok" && r.p50_ms != null);
  const durStep = niceStep(Math.max(...ok.map((r) => r.p50_ms), 0) * 1.12);
  const durMax = durStep * 4;
  const costStep = niceStep(Math.max(...ok.map((r) => r.cost_per_call_usd * 1e6), 0) * 1.12);
  const costMax = costStep * 4;
  const x = (i) => m.left + ((i + 0.5) * plotW) / results.length;
  const yDur = (v) => m.top + plotH - (v / durMax) * plotH;
  const yCost = (v) => m.top + plotH - ((v * 1e6) / costMax) * plotH;
  const parts = [];
  // grid and axes
  for (let k = 0; k <= 4; k++) {
    const y = m.top + plotH - (k / 4) * plotH;
    parts.push(`<line class="grid" x1="${m.left}" x2="${W - m.right}" y1="${y}" y2="${y}"/>`);
    parts.push(`<text class="tick dur" x="${m.left - 6}" y="${y + 4}" text-anchor="end">${tickLabel(durStep * k)}</text>`);
    parts.push(`<text class="tick cost" x="${W - m.right + 6}" y="${y + 4}">${tickLabel(costStep * k)}</text>`);
  }
  parts.push(`<line class="axis" x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${m.top + plotH}"/>`);
  parts.push(`<line class="axis" x1="${W - m.right}" x2="${W - m.right}" y1="${m.top}" y2="${m.top + plotH}"/>`);
  parts.push(`<line class="axis" x1="${m.left}" x2="${W - m.right}" y1="${m.top + plotH}" y2="${m.top + plotH}"/>`);
  parts.push(
    `<text class="ax-title dur" transform="translate(14 ${m.top + plotH / 2}) rotate(-90)" text-anchor="middle">duration (ms)</text>`,
    `<text class="ax-title cost" transform="translate(${W - 12} ${m.top + plotH / 2}) rotate(90)" text-anchor="middle">cost per call (µ$)</text>`,
    `<text class="ax-title" x="${m.left + plotW / 2}" y="${H - 4}" text-anchor="middle">memory size (MB)</text>`,
  );
  // the best-balance size: a band behind its column
  const balancedAt = results.findIndex((r) => r.memory_mb === s.balanced);
  if (balancedAt >= 0) {
    const band = plotW / results.length;
    parts.push(`<rect class="band" x="${x(balancedAt) - band / 2 + 3}" y="${m.top}" width="${band - 6}" height="${plotH}"/>`);
  }
  // the two series, through the sizes that ran without errors
  const line = (f) =>
    results
      .map((r, i) => (r.status === "ok" && r.p50_ms != null ? `${x(i).toFixed(1)},${f(r).toFixed(1)}` : null))
      .filter(Boolean)
      .join(" ");
  parts.push(`<polyline class="series dur" points="${line((r) => yDur(r.p50_ms))}"/>`);
  parts.push(`<polyline class="series cost" points="${line((r) => yCost(r.cost_per_call_usd))}"/>`);
  results.forEach((r, i) => {
    const cx = x(i);
    const label = `${r.memory_mb.toLocaleString("en")} MB`;
    parts.push(`<text class="cat" x="${cx}" y="${m.top + plotH + 17}" text-anchor="middle">${esc(r.memory_mb.toLocaleString("en"))}</text>`);
    const marks = [];
    if (r.memory_mb === s.fastest) marks.push("⚡ fastest");
    if (r.memory_mb === s.cheapest) marks.push("$ cheapest");
    if (r.memory_mb === s.balanced) marks.push("★ balance");
    marks.forEach((word, k) =>
      parts.push(`<text class="mark" x="${cx}" y="${m.top + plotH + 32 + k * 12}" text-anchor="middle">${esc(word)}</text>`),
    );
    if (r.status === "error") {
      const y = m.top + plotH - 14;
      parts.push(
        `<g class="pt err" tabindex="0" role="img" aria-label="${esc(`${label}: ${r.error_type}`)}">` +
          `<title>${esc(`${label}: ${r.error_type}: ${r.error || ""}`)}</title>` +
          `<text x="${cx}" y="${y}" text-anchor="middle" class="err-x">✕</text>` +
          `<text x="${cx}" y="${y - 16}" text-anchor="middle" class="err-word">${esc(shortError(r.error_type))}</text></g>`,
      );
      return;
    }
    if (r.status !== "ok" || r.p50_ms == null) {
      parts.push(`<text class="waiting" x="${cx}" y="${m.top + plotH - 8}" text-anchor="middle">${r.status === "running" ? "running…" : "waiting"}</text>`);
      return;
    }
    const yd = yDur(r.p50_ms);
    const yc = yCost(r.cost_per_call_usd);
    // labels apart: the higher point's above it, the lower one's below
    const durAbove = yd <= yc;
    parts.push(
      `<g class="pt dur${r.memory_mb === s.fastest ? " best" : ""}" tabindex="0" role="img" aria-label="${esc(`${label}: ${chartMs(r.p50_ms)}`)}">` +
        `<title>${esc(`${label}: median ${chartMs(r.p50_ms)}, mean ${chartMs(r.mean_ms)}`)}</title>` +
        `<circle cx="${cx}" cy="${yd}" r="5"/>` +
        `<text x="${cx}" y="${durAbove ? yd - 10 : yd + 18}" text-anchor="middle">${esc(chartMs(r.p50_ms))}</text></g>`,
      `<g class="pt cost${r.memory_mb === s.cheapest ? " best" : ""}" tabindex="0" role="img" aria-label="${esc(`${label}: ${fmtMicro(r.cost_per_call_usd)} per call`)}">` +
        `<title>${esc(`${label}: ${fmtUsd(r.cost_per_call_usd)} per call`)}</title>` +
        `<rect x="${cx - 5}" y="${yc - 5}" width="10" height="10"/>` +
        `<text x="${cx}" y="${durAbove ? yc + 19 : yc - 10}" text-anchor="middle">${esc(fmtMicro(r.cost_per_call_usd))}</text></g>`,
    );
  });
  // the legend
  parts.push(
    `<g class="legend-dur" transform="translate(${m.left} 14)"><line x1="0" x2="18" y1="0" y2="0"/><circle cx="9" cy="0" r="4"/><text x="24" y="4">duration, median of warm calls (left axis)</text></g>`,
    `<g class="legend-cost" transform="translate(${m.left + 300} 14)"><line x1="0" x2="18" y1="0" y2="0"/><rect x="5" y="-4" width="8" height="8"/><text x="24" y="4">cost per call (right axis)</text></g>`,
  );
  return `<svg class="tune-chart" viewBox="0 0 ${W} ${H}" xmlns="${SVG}" role="img" aria-label="Duration and cost per call at each memory size">${parts.join("")}</svg>`;
}

/** "fastest", "fastest and cheapest", "fastest, cheapest and best balance" */
function andList(words) {
  return words.length < 3 ? words.join(" and ") : `${words.slice(0, -1).join(", ")} and ${words.at(-1)}`;
}

/** Milliseconds on the chart, whatever their size: one unit along the axis. */
function chartMs(value) {
  return `${value >= 100 ? Math.round(value).toLocaleString("en") : value.toFixed(1)} ms`;
}

function shortError(type) {
  return String(type || "error").replace(/^Runtime\./, "").replace(/^Sandbox\./, "");
}

function table(s) {
  const rows = s.results.map((r) => {
    const best = [r.memory_mb === s.fastest && "fastest", r.memory_mb === s.cheapest && "cheapest", r.memory_mb === s.balanced && "best balance"]
      .filter(Boolean)
      .join(", ");
    const calls = r.calls.length;
    const okCalls = r.calls.filter((c) => c.status === "success").length;
    const status =
      r.status === "ok"
        ? `<span class="st ok">✓ ok</span>`
        : r.status === "error"
          ? `<span class="st err" title="${esc(r.error || "")}">✕ <b>${esc(r.error_type || "error")}</b></span>`
          : `<span class="st queued">${esc(r.status === "running" ? "running…" : "waiting")}</span>`;
    return `<tr${best ? ' class="best"' : ""}>
      <th scope="row">${esc(r.memory_mb.toLocaleString("en"))} MB${best ? ` <small>${esc(best)}</small>` : ""}</th>
      <td>${status}</td>
      <td>${okCalls} / ${calls}</td>
      <td>${r.p50_ms != null ? chartMs(r.p50_ms) : "–"}</td>
      <td>${r.mean_ms != null ? chartMs(r.mean_ms) : "–"}</td>
      <td>${r.billed_mean_ms != null ? `${esc(r.billed_mean_ms.toFixed(r.billed_mean_ms % 1 ? 1 : 0))} ms` : "–"}</td>
      <td title="${esc(fmtUsd(r.cost_per_call_usd))}">${fmtMicro(r.cost_per_call_usd)}</td>
      <td>${r.init_ms != null ? `${fmtMs(r.init_ms)} → ${fmtMicro(r.init_cost_usd)}` : "–"}</td>
      <td>${r.max_memory_used_mb != null ? `${r.max_memory_used_mb} MB` : "–"}</td>
    </tr>`;
  });
  return `<div class="tune-table-wrap"><table class="tune-table">
    <caption class="sr">Power tuning, by memory size</caption>
    <thead><tr>
      <th scope="col">Memory</th><th scope="col">Status</th><th scope="col">Calls ok</th>
      <th scope="col">Median (warm)</th><th scope="col">Mean</th><th scope="col">Billed (warm)</th>
      <th scope="col">Cost per call</th><th scope="col" title="A cold start's Init, billed since Aug 2025, once per new environment">Init (cold) → cost</th>
      <th scope="col">Max memory</th>
    </tr></thead>
    <tbody>${rows.join("")}</tbody></table></div>`;
}

// The timeline: one lane per execution environment, time left to right, following "now".
// Drawn as SVG, trimmed to what is visible (the time window and the lanes scrolled into
// view), at most once per animation frame; a custom tooltip survives redraws.

import { shortId } from "./model.js";

const LABEL_W = 188; // the lane labels, left of the plot
const LANE_H = 46;
const BAR_Y = 15;
const BAR_H = 16;
const MIN_W = 4; // a 2 ms call in a 5 minute window is still a visible bar
const MAX_PUSH = 8; // how far a bar may be nudged right so neighbours stay distinct
const FOLLOW_FRAME_MS = 40; // redraw while following: at most 25 times a second

export const WINDOWS = { "1s": 1_000, "10s": 10_000, "1m": 60_000, "5m": 300_000, all: null };

const STEPS = [
  100, 250, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000,
  900_000, 1_800_000, 3_600_000, 7_200_000, 21_600_000,
];

const STATE_WORDS = {
  initializing: "◔ initializing",
  busy: "▶ busy",
  frozen: "‖ frozen (idle)",
  "shutting down": "… shutting down",
  gone: "✕ shut down",
};

const SHUTDOWN_WORDS = {
  idle: "idle",
  capacity: "capacity",
  request: "you asked",
  close: "worker closed",
  failure: "failure",
  discarded: "discarded after its call (always cold)",
};

export function esc(text) {
  return String(text ?? "").replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c],
  );
}

export function fmtMs(value) {
  if (value == null || Number.isNaN(value)) return "–";
  if (value < 10) return `${value.toFixed(2)} ms`;
  if (value < 1000) return `${value.toFixed(1)} ms`;
  return `${(value / 1000).toFixed(2)} s`;
}

export function fmtAge(msAgo) {
  const s = Math.max(0, msAgo) / 1000;
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.floor(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.floor(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function shutdownWords(gone) {
  if (!gone || !gone.reason) return "shut down";
  const why = SHUTDOWN_WORDS[gone.reason] || gone.reason;
  if (gone.reason === "idle" && gone.idle_s != null) return `evicted after ${Math.round(gone.idle_s)} s idle`;
  return `shut down: ${why}`;
}

/** What kind of environment a lane is, when not Lambda's ordinary on-demand one. */
function laneKind(lane) {
  if (lane.initType === "provisioned-concurrency") return ` · <tspan class="lane-kind provisioned">provisioned</tspan>`;
  if (lane.alwaysCold) return ` · <tspan class="lane-kind always-cold">always cold</tspan>`;
  return "";
}

export class Timeline {
  /**
   * @param {HTMLElement} root where the timeline goes
   * @param {object} opts model, now() (the server's clock, or a replay's), onSelect(request id),
   *   onFollowChange(bool), nowWords and nowTick (what "now" is called above the lanes and on the
   *   axis: a replay's moment is not the clock's)
   */
  constructor(root, { model, now, onSelect, onFollowChange, nowWords = "now", nowTick = "now" }) {
    this.nowWords = nowWords;
    this.nowTick = nowTick;
    this.model = model;
    this.now = now;
    this.onSelect = onSelect;
    this.onFollowChange = onFollowChange;
    this.windowMs = WINDOWS["1m"];
    this.follow = true;
    this.viewEnd = now();
    this.selected = null;
    this.dirty = true;
    this.lastDrawTs = 0;
    this.lastDrawNow = 0;
    this.hoverKey = null;
    this.hoverPoint = null;

    root.innerHTML = `
      <div class="tl">
        <svg class="tl-axis" height="24" aria-hidden="true"></svg>
        <div class="tl-scroll">
          <svg class="tl-lanes" role="group" aria-label="Execution environments over time"></svg>
          <p class="tl-empty">No execution environment yet. Press <b>Invoke</b>: Lambda starts one
            (a <b>cold start</b>: it runs Init, then your handler) and keeps it frozen for the next call.</p>
        </div>
        <div class="tl-tip" role="tooltip" hidden></div>
      </div>`;
    this.axis = root.querySelector(".tl-axis");
    this.scroll = root.querySelector(".tl-scroll");
    this.svg = root.querySelector(".tl-lanes");
    this.empty = root.querySelector(".tl-empty");
    this.tip = root.querySelector(".tl-tip");
    this.box = root.querySelector(".tl");

    this.scroll.addEventListener("scroll", () => this.invalidate(), { passive: true });
    new ResizeObserver(() => this.invalidate()).observe(this.scroll);
    this._wirePointer();
    this._frame = this._frame.bind(this);
    requestAnimationFrame(this._frame);
  }

  // -- controls ----------------------------------------------------------------------------

  setWindow(key) {
    this.windowMs = WINDOWS[key] ?? null;
    this.invalidate();
  }

  setFollow(on) {
    if (this.follow === on) return;
    this.follow = on;
    if (!on) this.viewEnd = this.now();
    this.onFollowChange?.(on);
    this.invalidate();
  }

  /** Move the window by half its width, earlier (-1) or later (+1); stops following. */
  pan(direction) {
    const [from, to] = this._range(this.now());
    const end = to + (direction * (to - from)) / 2;
    if (direction > 0 && end >= this.now()) return this.setFollow(true);
    this.setFollow(false);
    this.viewEnd = end;
    this.invalidate();
  }

  select(requestId, { reveal = false } = {}) {
    this.selected = requestId;
    if (reveal) this._reveal(requestId);
    this.invalidate();
  }

  invalidate() {
    this.dirty = true;
  }

  // -- drawing -----------------------------------------------------------------------------

  _frame(ts) {
    requestAnimationFrame(this._frame);
    const now = this.now();
    const plotW = this._plotWidth();
    const [from, to] = this._range(now);
    const msPerPx = (to - from) / plotW;
    const moving = this.follow || this._anyRunning();
    const due =
      this.dirty ||
      (moving && ts - this.lastDrawTs >= FOLLOW_FRAME_MS && now - this.lastDrawNow >= msPerPx) ||
      ts - this.lastDrawTs >= 1000; // ages in the labels
    if (!due) return;
    this.dirty = false;
    this.lastDrawTs = ts;
    this.lastDrawNow = now;
    this._draw(now);
  }

  _plotWidth() {
    return Math.max(60, this.scroll.clientWidth - LABEL_W - 14);
  }

  _range(now) {
    if (this.windowMs == null) {
      const first = this.model.earliest() ?? now - 10_000;
      const end = this.follow ? now : this.viewEnd;
      const span = Math.max(2_000, end - first);
      return [first - span * 0.02, end + span * 0.01];
    }
    const end = this.follow ? now + this.windowMs * 0.02 : this.viewEnd;
    return [end - this.windowMs, end];
  }

  _anyRunning() {
    for (const lane of this.model.lanes.values()) if (lane.open.invoke || lane.open.init) return true;
    return false;
  }

  _draw(now) {
    const lanes = [...this.model.lanes.values()];
    this.empty.hidden = lanes.length > 0;
    const width = this.scroll.clientWidth;
    const plotW = this._plotWidth();
    const [from, to] = this._range(now);
    const scale = plotW / (to - from);
    const x = (t) => LABEL_W + (t - from) * scale;
    const right = LABEL_W + plotW;
    const height = Math.max(lanes.length * LANE_H, this.scroll.clientHeight - 2);
    // New environments appear at the bottom: keep them in view unless the reader scrolled up.
    const atBottom = this.scroll.scrollTop + this.scroll.clientHeight >= (this.lastHeight || 0) - 4;
    const grew = height > (this.lastHeight || 0);
    this.lastHeight = height;
    this.svg.setAttribute("width", width);
    this.svg.setAttribute("height", height);
    this.svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    if (grew && atBottom) this.scroll.scrollTop = height;

    const top = Math.max(0, Math.floor(this.scroll.scrollTop / LANE_H) - 1);
    const bottom = Math.min(lanes.length, Math.ceil((this.scroll.scrollTop + this.scroll.clientHeight) / LANE_H) + 1);
    const view = { from, to, x, right, now };
    const parts = [DEFS];
    for (let i = top; i < bottom; i++) parts.push(this._lane(lanes[i], i * LANE_H, width, view));
    const nowX = x(now);
    if (nowX >= LABEL_W && nowX <= right + 1) {
      parts.push(`<line class="now" x1="${nowX}" x2="${nowX}" y1="0" y2="${height}"/>`);
    }

    const focusKey = document.activeElement?.closest?.(".tl-lanes [data-key]")?.dataset.key;
    this.svg.innerHTML = parts.join("");
    if (focusKey) this.svg.querySelector(`[data-key="${CSS.escape(focusKey)}"]`)?.focus({ preventScroll: true });
    if (this.hoverKey) this._refreshTip();
    this._drawAxis(view, width);
  }

  _lane(lane, y, width, view) {
    const { from, to, x, right, now } = view;
    const unknownEnd = lane.gone && !lane.gone.reason; // shut down while no page was watching
    const age = unknownEnd ? "" : ` · age ${fmtAge((lane.gone ? lane.gone.time : now) - lane.born)}`;
    const state = unknownEnd
      ? "✕ no longer running"
      : lane.gone
        ? `✕ ${shutdownWords(lane.gone)}`
        : STATE_WORDS[lane.state] || lane.state;
    const instance = lane.instance ? ` · instance ${esc(lane.instance)}` : "";
    const out = [
      `<g class="lane ${lane.gone ? "gone" : ""} st-${esc(lane.state).replace(/\s/g, "-")}" transform="translate(0 ${y})">`,
      `<rect class="lane-bg" x="0" y="0" width="${width}" height="${LANE_H}"/>`,
      `<text class="lane-id" x="8" y="16"><title>environment ${esc(lane.id)}</title>env ${esc(lane.short)}<tspan class="lane-inst">${instance}</tspan></text>`,
      `<text class="lane-sub" x="8" y="33">${esc(state)}${esc(age)}${lane.revision != null ? ` · rev ${esc(lane.revision)}` : ""}${laneKind(lane)}</text>`,
    ];
    const visible = (span) => (span.end ?? now) >= from && span.start <= to;
    // Frozen gaps first, underneath; then Init and Invoke bars, left to right.
    for (const span of lane.spans) {
      if (span.kind !== "frozen" || !visible(span)) continue;
      const x0 = Math.max(LABEL_W, x(span.start));
      const x1 = Math.min(right, x(span.end ?? now));
      if (x1 - x0 < 1) continue;
      const tip = `Frozen for ${fmtAge((span.end ?? now) - span.start)}: paused between calls, memory and /tmp kept. The next call thaws it (warm start).`;
      out.push(
        `<rect class="sp-frozen" x="${x0}" y="${BAR_Y + 4}" width="${x1 - x0}" height="${BAR_H - 8}" data-tip="${esc(tip)}" data-key="f:${lane.id}:${span.start}"/>`,
      );
    }
    let cursor = -Infinity;
    let lastKey = "";
    for (const span of lane.spans) {
      if (span.kind === "frozen" || !visible(span)) continue;
      let x0 = x(span.start);
      if (x0 < cursor && cursor - x0 <= MAX_PUSH) x0 = cursor;
      const x1 = Math.max(x(span.end ?? now), x0 + MIN_W);
      cursor = x1 + 1;
      const c0 = Math.max(LABEL_W, x0);
      const c1 = Math.min(right, x1);
      if (c1 <= c0) continue;
      const markup = span.kind === "invoke" ? this._invoke(span, c0, c1, now) : initSpan(span, c0, c1, now);
      const key = markup.slice(0, 40) + Math.round(c0);
      if (key === lastKey && span.rid !== this.selected) continue; // hidden under its twin
      lastKey = key;
      out.push(markup);
    }
    for (const mark of lane.marks) {
      if (mark.time < from || mark.time > to) continue;
      const mx = x(mark.time);
      if (mark.kind === "connect" || mark.kind === "hangup") {
        const tip =
          mark.kind === "connect"
            ? `⇄ Connection opened to the lab service (${mark.opened} by this function so far, ${mark.open} open now). One opened in Init stays open through the freezes: warm calls reuse it.`
            : `⊘ The lab service hung up a connection (${mark.reason}).`;
        out.push(`<text class="mk-service" x="${mx - 4}" y="${BAR_Y + BAR_H + 11}" data-tip="${esc(tip)}" data-key="c:${lane.id}:${mark.time}">${mark.kind === "connect" ? "⇄" : "⊘"}</text>`);
      } else if (mark.kind === "reset") {
        const tip = `↺ Reset (${mark.reason || "runtime killed"}): the runtime was killed; the environment stays, /tmp kept, and its next call runs Init again.`;
        out.push(`<text class="mk-reset" x="${mx + 2}" y="${BAR_Y + BAR_H + 11}" data-tip="${esc(tip)}" data-key="r:${lane.id}:${mark.time}">↺</text>`);
      } else {
        const words = shutdownWords(mark);
        const tip = `✕ Shut down (${words}${mark.detail ? `: ${mark.detail}` : ""}): the environment is gone; the next call needs a new one (cold start).`;
        out.push(
          `<g class="mk-shutdown" data-tip="${esc(tip)}" data-key="s:${lane.id}"><text x="${mx - 4}" y="${BAR_Y + 12}">✕</text>` +
            (mx + 80 < right ? `<text class="mk-why" x="${mx + 8}" y="${BAR_Y + 12}">${esc(words)}</text>` : "") +
            `</g>`,
        );
      }
    }
    out.push("</g>");
    return out.join("");
  }

  _invoke(span, x0, x1, now) {
    const running = span.end == null;
    const failed = !running && span.status !== "success";
    const w = x1 - x0;
    const cls = ["sp-invoke", running ? "run" : failed ? "err" : "ok", span.cold ? "cold" : "warm"];
    if (w < 9) cls.push("narrow"); // too thin for an outline: the ❄ above says cold
    const selected = span.rid === this.selected;
    if (selected) cls.push("selected");
    const dur = running ? fmtMs(now - span.start) : fmtMs(span.duration_ms);
    const temp = span.cold ? `❄ cold start (${span.reason || "a new environment"})` : "♨ warm start (environment reused)";
    const outcome = running ? "running…" : failed ? `${span.error_type || span.status}` : "success";
    const figures = running
      ? `${dur} so far`
      : `${dur} · billed ${span.billed_duration_ms ?? "–"} ms · memory ${span.max_memory_used_mb ?? "–"} / ${span.memory_mb ?? "–"} MB`;
    const tip = `Invoke #${span.n} · ${temp} · ${outcome} · ${figures} · request ${shortId(span.rid)}`;
    let label = "";
    if (w > 70) label = `${span.cold ? "❄ cold " : ""}${failed ? "✕ " : ""}#${span.n}`;
    else if (w > 26) label = `#${span.n}`;
    const parts = [
      `<g class="${cls.join(" ")}" tabindex="0" role="button" data-rid="${esc(span.rid)}" data-key="i:${esc(span.rid)}" aria-label="${esc(tip)}" data-tip="${esc(tip)}">`,
      `<rect x="${x0}" y="${BAR_Y}" width="${w}" height="${BAR_H}" rx="2"/>`,
    ];
    if (span.cold) parts.push(`<text class="cold-mark" x="${x0 - 1}" y="${BAR_Y - 3}">❄</text>`);
    if (failed && w <= 70) parts.push(`<text class="err-mark" x="${x0 + w / 2 - 4}" y="${BAR_Y + BAR_H + 11}">✕</text>`);
    if (selected) parts.push(`<path class="sel-mark" d="M${x0 + w / 2 - 5} ${BAR_Y + BAR_H + 13} l5 -6 l5 6 z"/>`);
    if (label) parts.push(`<text class="sp-label" x="${x0 + 4}" y="${BAR_Y + 12}">${esc(label)}</text>`);
    parts.push("</g>");
    return parts.join("");
  }

  _drawAxis({ from, to, x, right }, width) {
    const plotW = right - LABEL_W;
    const span = to - from;
    const step = STEPS.find((s) => span / s <= plotW / 90) ?? STEPS[STEPS.length - 1];
    const now = this.now();
    const ticks = [];
    if (this.follow) {
      for (let t = now; t >= from; t -= step) ticks.push(t);
    } else {
      for (let t = Math.ceil(from / step) * step; t <= to; t += step) ticks.push(t);
    }
    const label = (t) => {
      if (this.follow) return t === now ? this.nowTick : `−${fmtTick(now - t)}`;
      return new Date(t).toLocaleTimeString([], { hour12: false });
    };
    const out = [`<text class="ax-title" x="8" y="16">${this.follow ? `following ${esc(this.nowWords)}` : "paused (drag or use Earlier/Later)"}</text>`];
    for (const t of ticks) {
      const tx = x(t);
      if (tx < LABEL_W || tx > right + 1) continue;
      const anchor = tx > right - 30 ? "end" : "middle";
      out.push(`<line x1="${tx}" x2="${tx}" y1="18" y2="24"/><text x="${tx}" y="14" text-anchor="${anchor}">${esc(label(t))}</text>`);
    }
    this.axis.setAttribute("width", width);
    this.axis.innerHTML = out.join("");
  }

  // -- pointer and keyboard ----------------------------------------------------------------

  _wirePointer() {
    const svg = this.svg;
    svg.addEventListener("pointermove", (e) => {
      if (this.drag) return this._dragMove(e);
      const target = e.target.closest?.("[data-tip]");
      this.hoverPoint = { x: e.clientX, y: e.clientY };
      if (!target) return this._hideTip();
      this.hoverKey = target.dataset.key;
      this._showTip(target.dataset.tip, e.clientX, e.clientY);
    });
    svg.addEventListener("pointerleave", () => this._hideTip());
    svg.addEventListener("focusin", (e) => {
      const target = e.target.closest?.("[data-tip]");
      if (!target) return;
      const r = target.getBoundingClientRect();
      this.hoverKey = target.dataset.key;
      this.hoverPoint = { x: r.left, y: r.bottom };
      this._showTip(target.dataset.tip, r.left, r.bottom);
    });
    svg.addEventListener("focusout", () => this._hideTip());
    svg.addEventListener("click", (e) => {
      if (this.dragged) return;
      const target = e.target.closest?.("[data-rid]");
      if (target) this.onSelect?.(target.dataset.rid);
    });
    svg.addEventListener("keydown", (e) => {
      const target = e.target.closest?.("[data-rid]");
      if (target && (e.key === "Enter" || e.key === " ")) {
        e.preventDefault();
        this.onSelect?.(target.dataset.rid);
      }
    });
    svg.addEventListener("pointerdown", (e) => {
      if (e.button !== 0 || e.target.closest?.("[data-rid]") || this.windowMs == null) return;
      const [, to] = this._range(this.now());
      this.drag = { x: e.clientX, end: to, scale: (to - this._range(this.now())[0]) / this._plotWidth() };
      this.dragged = false;
      svg.setPointerCapture(e.pointerId);
    });
    const stop = () => {
      this.drag = null;
      setTimeout(() => (this.dragged = false), 0);
    };
    svg.addEventListener("pointerup", stop);
    svg.addEventListener("pointercancel", stop);
  }

  _dragMove(e) {
    const dx = e.clientX - this.drag.x;
    if (!this.dragged && Math.abs(dx) < 4) return;
    this.dragged = true;
    if (this.follow) this.setFollow(false);
    this.viewEnd = Math.min(this.now(), this.drag.end - dx * this.drag.scale);
    this.invalidate();
  }

  _showTip(text, clientX, clientY) {
    const box = this.box.getBoundingClientRect();
    this.tip.textContent = text;
    this.tip.hidden = false;
    const w = this.tip.offsetWidth;
    const left = Math.min(clientX - box.left + 12, box.width - w - 4);
    this.tip.style.left = `${Math.max(4, left)}px`;
    this.tip.style.top = `${clientY - box.top + 14}px`;
  }

  _refreshTip() {
    const el = this.svg.querySelector(`[data-key="${CSS.escape(this.hoverKey)}"]`);
    if (!el) return this._hideTip();
    if (this.tip.textContent !== el.dataset.tip) this.tip.textContent = el.dataset.tip;
  }

  _hideTip() {
    this.hoverKey = null;
    this.tip.hidden = true;
  }

  /** Scroll the lane of this call into view and, if it is outside the window, move the window. */
  _reveal(requestId) {
    const inv = this.model.get(requestId);
    if (!inv || !inv.environment) return;
    const index = [...this.model.lanes.keys()].indexOf(inv.environment);
    if (index >= 0) {
      const y = index * LANE_H;
      if (y < this.scroll.scrollTop || y + LANE_H > this.scroll.scrollTop + this.scroll.clientHeight) {
        this.scroll.scrollTop = y - LANE_H;
      }
    }
    const [from, to] = this._range(this.now());
    const t = inv.started ?? inv.created;
    if (t != null && (t < from || t > to) && this.windowMs != null) {
      this.setFollow(false);
      this.viewEnd = Math.min(this.now(), t + this.windowMs / 2);
    }
  }
}

function initSpan(span, x0, x1, now) {
  const running = span.end == null;
  const dur = fmtMs((span.end ?? now) - span.start) + (running ? " so far" : "");
  const what = {
    runtime: "Init · runtime start (Lambda starts the Python runtime)",
    function: "Init · your module code (imports and code outside the handler)",
    init: "Init (runtime start and your module code)",
  }[span.kind];
  const retried = span.phase === "invoke" ? " · retried inside the call" : "";
  const failed = span.failed ? ` · FAILED: ${span.error_type || span.status}` : "";
  const tip = `${what}: ${dur}${retried}${failed}`;
  const cls = `sp-init k-${span.kind}${span.failed ? " failed" : ""}`;
  const label = x1 - x0 > 44 ? `<text class="sp-label" x="${x0 + 4}" y="${BAR_Y + 12}">${span.failed ? "✕ Init" : "Init"}</text>` : "";
  return `<g class="${cls}" data-tip="${esc(tip)}" data-key="n:${span.start}:${span.kind}"><rect x="${x0}" y="${BAR_Y}" width="${x1 - x0}" height="${BAR_H}"/>${label}</g>`;
}

function fmtTick(ms) {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min`;
  return `${Math.round(ms / 3_600_000)} h`;
}

const DEFS = `<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">
<rect width="6" height="6" fill="#e6ebef"/><line x1="0" y1="0" x2="0" y2="6" stroke="#8fa3b0" stroke-width="2"/></pattern></defs>`;

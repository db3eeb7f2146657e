// A shared link (/s/<id>): the code and event read-only, and the recorded run replayed through
// the same model, timeline and table as the live lab page. The run is a list of lifecycle events;
// the page shows its end at first, and Replay plays them again in time order (quiet gaps are
// shortened), or the slider moves to any moment of it.

import { EditorState, EditorView, basicSetup, json, python } from "/static/vendor/codemirror.js";
import { LabModel } from "./model.js";
import { InvocationTable, LogPanel } from "./table.js";
import { Timeline } from "./timeline.js";

const GAP_MS = 2_000; // a quieter stretch than this is played as this long
const TAIL_MS = 400; // after the last event, so the end is seen as ended
const SLIDER_MAX = 1000;

const $ = (id) => document.getElementById(id);
const boot = JSON.parse($("share-boot").textContent);

/** Page signals for browser tests. */
const signals = (window.lambdalab = {
  ready: false,
  shareId: boot.id,
  playing: false,
  replays: 0, // replays played to their end
  applied: 0, // events applied to the model so far
  total: 0,
  lanes: 0,
  invocations: 0,
  ended: 0,
});

// -- read-only code and event ------------------------------------------------------------

function readOnlyEditor(parent, doc, language, label) {
  parent.textContent = "";
  return new EditorView({
    parent,
    state: EditorState.create({
      doc,
      extensions: [
        basicSetup,
        language(),
        EditorState.readOnly.of(true),
        EditorView.contentAttributes.of({ "aria-label": label, "aria-readonly": "true" }),
      ],
    }),
  });
}

readOnlyEditor($("code-view"), boot.code, python, "Function code (read-only)");
readOnlyEditor($("event-view"), boot.event, json, "Event JSON (read-only)");

$("copy-link").addEventListener("click", async (e) => {
  const url = e.currentTarget.dataset.url;
  try {
    await navigator.clipboard.writeText(url);
  } catch {
    const area = Object.assign(document.createElement("textarea"), { value: url });
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  $("copied").textContent = "Copied";
  setTimeout(() => ($("copied").textContent = ""), 2000);
});

// -- the replay ----------------------------------------------------------------------------

const events = boot.run ? [...boot.run.events].sort((a, b) => (a.time ?? 0) - (b.time ?? 0)) : [];
signals.total = events.length;

/** Replay time: the run's own time with each quiet gap shortened to GAP_MS, as knots
 * (real time, replay time) to map one onto the other. */
const knots = [];
for (const ev of events) {
  const last = knots[knots.length - 1];
  if (!last) knots.push({ real: ev.time, at: 0 });
  else if (ev.time > last.real) knots.push({ real: ev.time, at: last.at + Math.min(ev.time - last.real, GAP_MS) });
}
const replayEnd = knots.length ? knots[knots.length - 1].at + TAIL_MS : 0;

function realTime(at) {
  if (!knots.length) return Date.now();
  if (at <= 0) return knots[0].real;
  for (let i = 1; i < knots.length; i++) {
    const a = knots[i - 1];
    const b = knots[i];
    if (at <= b.at) return a.real + ((at - a.at) * (b.real - a.real)) / Math.max(1, b.at - a.at);
  }
  const last = knots[knots.length - 1];
  return last.real + (at - last.at);
}

// The whole run applied once: each call's complete log, for the log panel at any moment.
const whole = new LabModel();
for (const ev of events) whole.apply(ev);

const model = new LabModel();
let at = replayEnd; // where the replay stands, in replay time
let next = 0; // the next event to apply
let playing = false;
let speed = 1;
let lastFrame = null;

function seek(to) {
  const target = Math.max(0, Math.min(replayEnd, to));
  if (target < at) {
    model.clear(); // back in time: replay from the start up to there
    next = 0;
  }
  at = target;
  const until = realTime(at);
  let changed = false;
  while (next < events.length && events[next].time <= until) {
    model.apply(events[next]);
    next++;
    changed = true;
  }
  if (changed || target === 0) render();
  renderClock();
}

function play() {
  if (!events.length) return;
  if (at >= replayEnd) seek(0);
  playing = true;
  lastFrame = null;
  signals.playing = true;
  $("replay-pause").disabled = false;
  requestAnimationFrame(frame);
}

function pause() {
  playing = false;
  signals.playing = false;
  $("replay-pause").disabled = true;
}

function frame(ts) {
  if (!playing) return;
  if (lastFrame != null) seek(at + (ts - lastFrame) * speed);
  lastFrame = ts;
  if (at >= replayEnd) {
    pause();
    signals.replays += 1;
    return;
  }
  requestAnimationFrame(frame);
}

function fmtClock(ms) {
  return `${(ms / 1000).toFixed(1)} s`;
}

function renderClock() {
  if (!boot.run) return;
  $("replay-at").value = replayEnd ? Math.round((at / replayEnd) * SLIDER_MAX) : SLIDER_MAX;
  $("replay-at").setAttribute("aria-valuetext", `${fmtClock(at)} of ${fmtClock(replayEnd)}`);
  $("replay-clock").textContent = `${fmtClock(at)} / ${fmtClock(replayEnd)} · ${next} of ${events.length} events`;
}

// -- views ---------------------------------------------------------------------------------

const now = () => realTime(at);
let timeline = null;
let table = null;
let logPanel = null;

function select(requestId, { from = "page" } = {}) {
  table.select(requestId, { reveal: from !== "table" });
  timeline.select(requestId, { reveal: from !== "timeline" });
  logPanel.show(requestId);
}

function render() {
  if (!boot.run) return;
  table.render();
  logPanel.render();
  timeline.invalidate();
  Object.assign(signals, {
    applied: next,
    lanes: model.lanes.size,
    invocations: model.invocations.size,
    ended: model.ended,
  });
}

if (boot.run) {
  timeline = new Timeline($("timeline"), {
    model,
    now,
    nowWords: "the replay",
    nowTick: "replayed",
    onSelect: (id) => select(id, { from: "timeline" }),
  });
  table = new InvocationTable($("table"), { model, now, onSelect: (id, opts) => select(id, opts) });
  logPanel = new LogPanel($("log-panel"), {
    model,
    fetchDetail: async (id) => {
      const inv = whole.get(id);
      return { logs: inv?.logs || [], response: inv?.response ?? "", log_truncated: Boolean(inv?.log_truncated) };
    },
  });
  timeline.setWindow($("tl-window").value);
  if (!events.length) timeline.empty.textContent = "The recorded run holds no calls.";

  $("replay").addEventListener("click", () => {
    seek(0);
    play();
  });
  $("replay-pause").addEventListener("click", pause);
  $("replay-speed").addEventListener("change", (e) => (speed = Number(e.target.value) || 1));
  $("tl-window").addEventListener("change", (e) => timeline.setWindow(e.target.value));
  $("replay-at").addEventListener("input", (e) => {
    pause();
    seek((Number(e.target.value) / SLIDER_MAX) * replayEnd);
  });

  // The end of the run at first: everything it recorded, the newest call selected.
  at = 0;
  seek(replayEnd);
  if (model.order.length) select(model.order[0]);
}
signals.ready = true;

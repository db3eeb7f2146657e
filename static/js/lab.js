// The lab page: the boot data, the editors and settings, the JSON API, the WebSocket that
// streams lifecycle events, and the glue between the timeline, the table and the log.

import {
  EditorView,
  basicSetup,
  EditorState,
  keymap,
  python,
  json,
  jsonParseLinter,
  linter,
  lintGutter,
  setDiagnostics,
  indentWithTab,
} from "/static/vendor/codemirror.js";
import { Inspector, inspectButton } from "./inspector.js";
import { ENDED, LabModel, shortId } from "./model.js";
import { SettingsForm, formatEnvironment } from "./settings.js";
import { ShareDialog } from "./share.js";
import { InvocationTable, LogPanel, temperature } from "./table.js";
import { TEMPLATES, templateText } from "./templates.js";
import { Timeline, esc, fmtAge, fmtMs } from "./timeline.js";
import { PowerTuning } from "./tuning.js";
import { meterText } from "./billing.js";

const boot = JSON.parse(document.getElementById("lab-boot").textContent);
const functionId = boot.function.id;
const maxBurst = boot.limits.max_burst;
let saved = { ...boot.function }; // the function as the server has it
let batch = null; // the last request: {ids, mode}
let syntaxMarked = false;

const $ = (id) => document.getElementById(id);

/** Page signals for browser tests. */
const signals = (window.lambdalab = {
  ready: false,
  seq: 0,
  invocations: 0,
  ended: 0,
  lanes: 0,
  reconnects: 0, // times the event stream was re-opened after a cut
  counts: {}, // events applied, by type
  functionId,
  requestIds: () => [...model.order],
  /** The calls as the table shows them, newest first. */
  calls: () =>
    model.order.map((id) => {
      const { request_id, status, cold, init_reason, init_reason_text, environment, error_type, response } =
        model.invocations.get(id);
      return { request_id, status, cold, init_reason, init_reason_text, environment, error_type, response };
    }),
  environmentIds: () => [...model.lanes.keys()],
  inspected: () => inspector.loads, // State inspector answers drawn
});

// -- the server's clock: event times are the server's; "now" on the timeline must match ------

let clockOffset = 0;
const now = () => Date.now() + clockOffset;
function observeClock(eventTime) {
  const ahead = eventTime - Date.now(); // > 0 only if the server's clock runs ahead of ours
  if (ahead > clockOffset && ahead < 3_600_000) clockOffset = ahead;
}

// -- the JSON API -----------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, error) {
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.type = error.type;
    this.field = error.field;
  }
}

function csrfToken() {
  const cookie = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return cookie ? decodeURIComponent(cookie[1]) : document.querySelector("[name=csrfmiddlewaretoken]")?.value || "";
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try {
    data = await response.json();
  } catch {
    /* an empty or non-JSON body */
  }
  if (!response.ok) {
    throw new ApiError(response.status, data?.error || { type: `HTTP ${response.status}`, message: response.statusText });
  }
  return data;
}

// -- state and views --------------------------------------------------------------------------

const model = new LabModel();
model.load(boot.invocations, boot.environments, boot.seq);

const timeline = new Timeline($("timeline"), {
  model,
  now,
  onSelect: (id) => select(id, { from: "timeline" }),
  onFollowChange: (on) => ($("tl-follow").checked = on),
});
const table = new InvocationTable($("table"), { model, now, onSelect: (id, opts) => select(id, opts) });
const inspector = new Inspector($("inspector"), {
  fetchState: (env) => api("GET", `/api/functions/${functionId}/environments/${env}/state`),
  shortId: (id) => shortId(id, 6),
});
const logPanel = new LogPanel($("log-panel"), {
  model,
  fetchDetail: (id) => api("GET", `/api/invocations/${id}`),
});

const tuning = new PowerTuning($("tuning"), {
  functionId,
  api,
  boot: boot.tuning,
  beforeRun: () => saveChanges(),
  signals,
});

function select(requestId, { from = "page" } = {}) {
  selectedId = requestId;
  renderLastCall();
  table.select(requestId, { reveal: from !== "table" });
  timeline.select(requestId, { reveal: from !== "timeline" });
  logPanel.show(requestId);
  if (from === "timeline" || from === "table") $("log-panel").scrollIntoView({ block: "nearest" });
}

// -- editors and settings ---------------------------------------------------------------------

const form = new SettingsForm({ limits: boot.limits, onInput: () => refreshDirty() });

// Settings a course scenario sets: shown, not editable (and refused by the server too).
for (const name of boot.function.locked || []) {
  const field = document.getElementById(`set-${name}`);
  if (!field) continue;
  field.disabled = true;
  field.title = "Set by the course scenario";
  const note = document.createElement("span");
  note.className = "locked-note";
  note.textContent = " 🔒 set by the course scenario";
  field.insertAdjacentElement("afterend", note);
}

const codeView = new EditorView({
  parent: $("code-editor"),
  state: EditorState.create({
    doc: saved.code,
    extensions: [
      basicSetup,
      python(),
      lintGutter(),
      keymap.of([indentWithTab]),
      EditorView.contentAttributes.of({ "aria-label": "Function code", "aria-describedby": "err-code" }),
      EditorView.updateListener.of((update) => {
        if (!update.docChanged) return;
        clearSyntaxMarker();
        form.clearError("code");
        refreshDirty();
      }),
    ],
  }),
});

const eventView = new EditorView({
  parent: $("event-editor"),
  state: EditorState.create({
    doc: saved.event,
    extensions: [
      basicSetup,
      json(),
      linter(jsonParseLinter()),
      lintGutter(),
      EditorView.contentAttributes.of({ "aria-label": "Event JSON", "aria-describedby": "err-event" }),
      EditorView.updateListener.of((update) => {
        if (!update.docChanged) return;
        form.clearError("event");
        refreshDirty();
      }),
    ],
  }),
});

form.fill(saved);
const templateSelect = $("event-template");
for (const t of TEMPLATES) templateSelect.append(new Option(t.label, t.id));
templateSelect.addEventListener("change", () => {
  const text = templateText(templateSelect.value);
  if (text == null) return;
  eventView.dispatch({ changes: { from: 0, to: eventView.state.doc.length, insert: text } });
});
$("set-handler").addEventListener("input", showCodeFile);
showCodeFile();

function showCodeFile() {
  const value = $("set-handler").value.trim();
  const module = value.includes(".") ? value.slice(0, value.lastIndexOf(".")) : "lambda_function";
  $("code-file").textContent = `${module.replace(/\./g, "/")}.py`;
}

function codeText() {
  return codeView.state.doc.toString();
}

function eventText() {
  return eventView.state.doc.toString();
}

/** The settings as they differ from the saved function (one PATCH carries them all). */
function pendingChanges(values) {
  const patch = {};
  if (codeText() !== saved.code) patch.code = codeText();
  if (eventText() !== saved.event) patch.event = eventText();
  for (const name of ["memory_mb", "timeout_s", "tmp_mb", "idle_timeout_s", "reserved_concurrency", "provisioned_concurrency", "always_cold", "handler"]) {
    if (values[name] !== (saved[name] ?? null)) patch[name] = values[name];
  }
  if (formatEnvironment(values.environment) !== formatEnvironment(saved.environment)) {
    patch.environment = values.environment;
  }
  return patch;
}

function refreshDirty() {
  const raw = {
    memory_mb: $("set-memory_mb").value,
    timeout_s: $("set-timeout_s").value,
    tmp_mb: $("set-tmp_mb").value,
    idle_timeout_s: $("set-idle_timeout_s").value,
    reserved_concurrency: $("set-reserved_concurrency").value,
    provisioned_concurrency: $("set-provisioned_concurrency").value,
    always_cold: $("set-always_cold").checked,
    handler: $("set-handler").value,
  };
  const dirty =
    codeText() !== saved.code ||
    eventText() !== saved.event ||
    Object.entries(raw).some(([k, v]) => String(v).trim() !== String(saved[k] ?? "")) ||
    $("set-environment").value.trim() !== formatEnvironment(saved.environment);
  $("dirty").hidden = !dirty;
}

function checkEvent() {
  try {
    JSON.parse(eventText() || "{}");
    form.clearError("event");
    return true;
  } catch (err) {
    form.showError("event", `The event is not valid JSON: ${err.message}`);
    return false;
  }
}

const CHANGE_WORDS = {
  code: "code changed",
  handler: "handler changed",
  memory_mb: "memory changed",
  timeout_s: "timeout changed",
  tmp_mb: "/tmp size changed",
  environment: "environment variables changed",
};

/** Save what changed with one PATCH; false (reasons shown by the fields) if refused. */
async function saveChanges() {
  const read = form.read();
  const eventOk = checkEvent();
  if (read.invalid || !eventOk) {
    notice("Not invoked: fix the field marked in red first.", "error");
    form.focus(read.invalid ? read.invalid[0] : "event");
    return false;
  }
  const patch = pendingChanges(read.values);
  if (!Object.keys(patch).length) return true;
  try {
    const fn = await api("PATCH", `/api/functions/${functionId}`, patch);
    saved = { ...saved, ...fn };
    $("revision").textContent = `revision ${fn.revision}`;
    if (fn.new_revision) {
      const why = (fn.changed || []).map((c) => CHANGE_WORDS[c] || `${c} changed`).join(", ");
      notice(`new revision ${fn.revision}: the next call will be cold (${why})`, "info");
    }
    refreshDirty();
    return true;
  } catch (err) {
    showApiError(err);
    return false;
  }
}

function showApiError(err, { countField } = {}) {
  if (!(err instanceof ApiError)) {
    notice(`Could not reach the lab: ${err.message}`, "error");
    return;
  }
  const field = err.field === "count" ? countField : err.field;
  if (field && form.showError(field, err.message)) {
    notice(`Not invoked: ${err.message}`, "error");
    form.focus(field);
  } else {
    notice(`${err.type ? `${err.type}: ` : ""}${err.message}`, "error");
  }
}

function notice(text, kind = "info") {
  const el = $("notice");
  el.textContent = text;
  el.className = `notice ${kind}`;
}

// -- provisioned concurrency: applied at once (Lambda initialises the environments ahead) ----------

$("provision").addEventListener("click", async () => {
  const got = form.check("provisioned_concurrency");
  if (!got) return;
  if (await saveChanges()) {
    notice(
      got.value
        ? `provisioning ${got.value} environment${got.value > 1 ? "s" : ""}: Init runs now, before any call`
        : "provisioned concurrency off: the provisioned environments are released",
      "info",
    );
  }
});

function provisioned(ev) {
  if (ev.error) notice(`Provisioned concurrency: ${ev.ready} of ${ev.wanted} ready. ${ev.error}`, "error");
  else if (ev.wanted) notice(`${ev.ready} provisioned environment${ev.ready > 1 ? "s" : ""} ready: calls within it are warm`, "info");
}

// -- the function's name: saved on change -----------------------------------------------------

$("fn-name").addEventListener("change", async () => {
  const name = $("fn-name").value.trim();
  if (!name || name.length > 64) {
    form.showError("name", "Name must be 1 to 64 characters");
    return;
  }
  if (name === saved.name) return;
  try {
    const fn = await api("PATCH", `/api/functions/${functionId}`, { name });
    saved.name = fn.name;
    form.clearError("name");
    document.title = `${fn.name} · LambdaLab`;
    notice(`Renamed to ${fn.name}.`);
  } catch (err) {
    showApiError(err);
  }
});
$("fn-name").addEventListener("input", () => form.clearError("name"));

// -- invoking -----------------------------------------------------------------------------

let queue = Promise.resolve(); // one request at a time: a save must land before its invoke

function invoke(mode) {
  queue = queue.then(() => doInvoke(mode)).catch((err) => console.error(err));
  return queue;
}

function readCount(mode) {
  const input = $(mode === "series" ? "series-count" : "burst-count");
  const box = mode === "series" ? "series-count" : "burst-count";
  const value = Number(input.value);
  if (!Number.isInteger(value) || value < 1 || value > maxBurst) {
    form.showError(box, `${mode === "series" ? "In a row" : "At once"}: a whole number from 1 to ${maxBurst}`);
    input.focus();
    return null;
  }
  form.clearError(box);
  return value;
}

async function doInvoke(mode) {
  notice(""); // a save below may say why the next call is cold
  let count = 1;
  if (mode !== "once") {
    count = readCount(mode);
    if (count == null) return;
  }
  if (!(await saveChanges())) return;
  try {
    const answer = await api("POST", `/api/functions/${functionId}/invoke`, { mode, count });
    model.addRequested(answer.request_ids, { batch: answer.batch, mode, revision: answer.revision });
    batch = { ids: answer.request_ids, mode };
    select(answer.request_ids[0]);
    renderNow();
  } catch (err) {
    showApiError(err, { countField: mode === "series" ? "series-count" : "burst-count" });
  }
}

$("invoke").addEventListener("click", () => invoke("once"));
$("invoke-series").addEventListener("click", () => invoke("series"));
$("invoke-burst").addEventListener("click", () => invoke("burst"));
for (const id of ["series-count", "burst-count"]) {
  $(id).max = maxBurst;
  $(id).addEventListener("input", () => form.clearError(id));
  $(id).addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.ctrlKey && !e.metaKey) invoke(id === "series-count" ? "series" : "burst");
  });
}
document.addEventListener(
  "keydown",
  (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      e.stopPropagation();
      invoke("once");
    }
  },
  true,
);

$("shutdown").addEventListener("click", async () => {
  const live = model.liveLanes().length;
  try {
    await api("POST", `/api/functions/${functionId}/environments`);
    model.markShuttingDown();
    notice(
      live
        ? `Shutting down ${live} environment${live === 1 ? "" : "s"}: the next call will be cold.`
        : "No environment is running; the next call will be cold anyway.",
    );
    renderNow();
  } catch (err) {
    showApiError(err);
  }
});

// Share: a link to a snapshot of the saved function and, optionally, the calls the page shows.
new ShareDialog({
  functionName: () => saved.name,
  save: saveChanges,
  requestIds: () => model.order.filter((id) => ENDED.has(model.get(id).status)),
  create: (body) => api("POST", `/api/functions/${functionId}/share`, body),
});

// -- the syntax error marker ------------------------------------------------------------------

function markSyntaxError(inv) {
  if (String(inv.revision) !== String(saved.revision) || codeText() !== saved.code) return;
  let body = null;
  try {
    body = JSON.parse(inv.response);
  } catch {
    /* a cut preview: read it as text below */
  }
  const stack = Array.isArray(body?.stackTrace) ? body.stackTrace.join("\n") : inv.response || "";
  const message = body?.errorMessage || /"errorMessage"\s*:\s*"((?:[^"\\]|\\.)*)"/.exec(inv.response || "")?.[1] || "Syntax error";
  const found = /Line (\d+)/.exec(stack) || /line (\d+)\)/.exec(message);
  const file = /File "\/var\/task\/([^"]+)"/.exec(stack)?.[1];
  if (!found || (file && file !== $("code-file").textContent)) return;
  const doc = codeView.state.doc;
  const line = doc.line(Math.max(1, Math.min(Number(found[1]), doc.lines)));
  codeView.dispatch(
    setDiagnostics(codeView.state, [
      { from: line.from, to: line.to, severity: "error", source: "Lambda", message: `Runtime.UserCodeSyntaxError: ${message}` },
    ]),
  );
  syntaxMarked = true;
  form.showError("code", `Runtime.UserCodeSyntaxError on line ${line.number}: ${message}`);
}

function clearSyntaxMarker() {
  if (!syntaxMarked) return;
  syntaxMarked = false;
  codeView.dispatch(setDiagnostics(codeView.state, []));
  form.clearError("code");
}

// -- the event stream ------------------------------------------------------------------------

let socket = null;
let backoff = 500;
let lastMessage = 0;

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws/functions/${functionId}/events?after=${model.seq}`);
  connection("connecting");
  socket.addEventListener("open", () => {
    backoff = 500;
    lastMessage = Date.now();
    connection("live");
    signals.ready = true;
  });
  socket.addEventListener("message", (message) => {
    lastMessage = Date.now();
    receive(JSON.parse(message.data));
  });
  socket.addEventListener("close", (e) => {
    if (e.code === 4404) {
      connection("closed");
      notice("This function no longer exists (or is not yours): reload the page.", "error");
      return;
    }
    connection("reconnecting");
    signals.reconnects += 1;
    setTimeout(connect, backoff + Math.random() * 300);
    backoff = Math.min(backoff * 2, 15_000);
  });
}

// The server pings every 15 s when quiet: a silent socket is a dead one.
setInterval(() => {
  if (socket?.readyState === WebSocket.OPEN && Date.now() - lastMessage > 45_000) socket.close();
}, 5_000);

function receive(message) {
  if (message.type === "events") {
    for (const ev of message.events) {
      if (ev.function_id && ev.function_id !== functionId) continue;
      if (!model.apply(ev)) continue;
      signals.counts[ev.type] = (signals.counts[ev.type] || 0) + 1;
      if (ev.time) observeClock(ev.time);
      if (ev.type === "invoke.end") ended(model.get(ev.request_id));
      else if (ev.type === "tune.progress" || ev.type === "tune.end") tuning.receive(ev);
      else if (ev.type === "provisioned") provisioned(ev);
    }
    renderNow();
  } else if (message.type === "snapshot") {
    model.load(message.invocations, message.environments, message.seq);
    renderNow();
  }
}

function ended(inv) {
  if (!inv) return;
  if (inv.error_type === "Runtime.UserCodeSyntaxError") markSyntaxError(inv);
  else if (inv.status === "success") clearSyntaxMarker();
}

function connection(state) {
  const el = $("connection");
  el.className = `conn ${state}`;
  el.textContent = { live: "● live", connecting: "○ connecting…", reconnecting: "○ reconnecting…", closed: "✕ closed" }[state];
  el.title = state === "live" ? "Receiving lifecycle events as they happen" : "Not receiving events: retrying";
}

// -- rendering ------------------------------------------------------------------------------

function renderNow() {
  table.render();
  logPanel.render();
  renderAlive();
  renderLastCall();
  renderProgress();
  $("meter").textContent = meterText(model);
  timeline.invalidate();
  Object.assign(signals, {
    seq: model.seq,
    invocations: model.invocations.size,
    ended: model.ended,
    lanes: model.lanes.size,
  });
}

const STATE_BADGES = {
  initializing: "◔ initializing",
  busy: "▶ busy",
  frozen: "‖ frozen",
  "shutting down": "… shutting down",
};

// Lifecycle controls: make a lesson happen now (the outcome arrives as events).
$("alive").addEventListener("click", async (e) => {
  const button = e.target.closest("button[data-action]");
  if (!button) return;
  const { env, action } = button.dataset;
  if (action === "inspect") return inspector.open(env);
  button.disabled = true;
  try {
    await api("POST", `/api/functions/${functionId}/environments/${env}`, { action, seconds: 60 });
    notice(
      {
        evict: "Evicting it: the next call will be cold.",
        reset: "Resetting its runtime: the next call re-initialises in this environment.",
        age: "Its idle clock moved on by 60 s.",
      }[action],
    );
  } catch (err) {
    notice(err.message || String(err), "error");
    button.disabled = false;
  }
});

function renderAlive() {
  const lanes = model.liveLanes();
  $("alive-count").textContent = lanes.length;
  inspector.keepOnly(lanes.map((lane) => lane.id));
  const t = now();
  $("alive").innerHTML = lanes.length
    ? lanes
        .map(
          (lane) =>
            `<li><code title="${esc(lane.id)}">${esc(lane.short)}</code>` +
            (lane.instance ? ` <span class="inst">instance ${esc(lane.instance)}</span>` : "") +
            ` <span class="state ${esc(lane.state.replace(/\s/g, "-"))}">${STATE_BADGES[lane.state] || esc(lane.state)}</span>` +
            ` <span class="age">age ${fmtAge(t - lane.born)}</span>` +
            (lane.state === "frozen"
              ? ` <span class="controls">` +
                `<button type="button" class="mini" data-env="${esc(lane.id)}" data-action="evict" aria-label="Evict environment ${esc(lane.short)} now" title="Shut it down as its idle eviction would">evict now</button>` +
                `<button type="button" class="mini" data-env="${esc(lane.id)}" data-action="reset" aria-label="Reset the runtime of environment ${esc(lane.short)}" title="Kill its runtime as a crash would: the next call re-initialises here">reset runtime</button>` +
                `<button type="button" class="mini" data-env="${esc(lane.id)}" data-action="age" aria-label="Age environment ${esc(lane.short)} by one minute" title="Move its idle clock on by 60 s">+60 s idle</button>` +
                inspectButton(lane) +
                `</span>`
              : "") +
            `</li>`,
        )
        .join("")
    : `<li class="none">None: the next call will be a cold start.</li>`;
}

let selectedId = null;

/** The phases of one call, in order: Init's parts (a cold start) and the Invoke. */
function phases(inv) {
  const lane = inv.environment ? model.lanes.get(inv.environment) : null;
  const out = [];
  const index = lane ? lane.spans.findIndex((s) => s.kind === "invoke" && s.rid === inv.request_id) : -1;
  for (let j = index - 1; j >= 0 && ["runtime", "function", "init"].includes(lane.spans[j].kind); j--) {
    const span = lane.spans[j];
    if (span.end == null) break;
    const label = { runtime: "Init: runtime start", function: "Init: your module code", init: "Init" }[span.kind];
    out.unshift({ cls: `k-${span.kind}${span.failed ? " failed" : ""}`, label, ms: span.end - span.start });
  }
  if (!out.length && inv.cold && inv.init_duration_ms) out.push({ cls: "k-init", label: "Init", ms: inv.init_duration_ms });
  out.push({ cls: inv.status === "success" ? "ok" : "err", label: "Invoke (your handler)", ms: inv.duration_ms || 0 });
  return out;
}

function phaseBar(inv) {
  const parts = phases(inv);
  const total = parts.reduce((n, p) => n + p.ms, 0);
  const scale = Math.max(total, 30); // one scale for short calls, so cold and warm compare by eye
  const bar = parts
    .map((p) => `<span class="ph ${p.cls}" style="width:${Math.max(0.6, (p.ms / scale) * 100)}%"></span>`)
    .join("");
  const words = parts.map((p) => `<span><i class="sw ${p.cls}"></i>${p.label} <b>${fmtMs(p.ms)}</b></span>`).join("");
  return `<div class="phases" aria-hidden="true">${bar}</div><p class="phase-words">${words}${inv.cold ? "" : "<span>no Init: warm</span>"}</p>`;
}

function renderLastCall() {
  const id =
    selectedId && ENDED.has(model.get(selectedId)?.status)
      ? selectedId
      : model.order.find((rid) => ENDED.has(model.get(rid).status));
  const box = $("last-call");
  if (!id) return;
  const inv = model.get(id);
  const lane = inv.environment ? model.lanes.get(inv.environment) : null;
  const env = inv.environment
    ? `<code>${esc(shortId(inv.environment, 6))}</code>${lane?.instance ? ` (instance <code>${esc(lane.instance)}</code>)` : ""}`
    : "";
  let text;
  if (!inv.environment) {
    text = `Call #${inv.n} did not run: <b>${esc(inv.error_type || inv.status)}</b>.`;
  } else if (inv.cold) {
    const init = inv.init_duration_ms ? `Init took ${fmtMs(inv.init_duration_ms)} (runtime start, then your module code), then ` : "Init ran again inside the call, then ";
    text = `Call #${inv.n} needed a new execution environment ${env} because of <b>${esc(inv.init_reason_text || "a cold start")}</b>. ${init}your handler ran for ${fmtMs(inv.duration_ms)}.`;
  } else if (inv.init_reason_text) {
    text = `Call #${inv.n} reused environment ${env}, but Lambda ran Init again inside the call because <b>${esc(inv.init_reason_text)}</b>; the handler ran for ${fmtMs(inv.duration_ms)}.`;
  } else {
    text = `Call #${inv.n} reused the frozen environment ${env}: it was thawed, your module code did not run again (globals kept their values), and the handler ran for ${fmtMs(inv.duration_ms)}.`;
  }
  if (inv.status !== "success") {
    const reset = inv.status === "timeout" || /OutOfMemory|ExitError/.test(inv.error_type || "")
      ? " Lambda killed the runtime (↺ reset): the environment stays, and its next call runs Init again."
      : "";
    text += ` It failed: <b>${esc(inv.error_type || inv.status)}</b>.${reset}`;
  }
  box.innerHTML = `<p>${temperature(inv)} ${text}</p>${inv.environment ? phaseBar(inv) : ""}`;
}

function renderProgress() {
  const el = $("progress");
  if (!batch) return;
  const calls = batch.ids.map((id) => model.get(id)).filter(Boolean);
  const done = calls.filter((c) => ENDED.has(c.status));
  const throttled = done.filter((c) => c.status === "throttled").length; // never ran: neither cold nor warm
  const ran = done.filter((c) => c.status !== "throttled");
  const failed = ran.filter((c) => c.status !== "success").length;
  const cold = ran.filter((c) => c.cold).length;
  if (batch.mode === "once") {
    $("batch-bar").hidden = true;
    const call = calls[0];
    el.textContent = !call
      ? ""
      : call.status === "throttled"
        ? `Call #${call.n} throttled: over the reserved concurrency, it never ran (TooManyRequestsException).`
        : done.length
          ? `Call #${call.n} done: ${call.cold ? "❄ cold" : "♨ warm"}, ${call.status === "success" ? "success" : call.error_type || call.status}.`
          : `Call #${call.n} ${call.status === "running" ? "running…" : "queued…"}`;
    return;
  }
  const how = batch.mode === "series" ? "in a row" : "at once";
  renderBatchBar(calls.length, { cold, warm: ran.length - cold - failed, failed, throttled });
  el.textContent =
    `${done.length} of ${calls.length} done (${how})` +
    (ran.length ? ` · ${cold} cold, ${ran.length - cold} warm` : "") +
    (failed ? ` · ${failed} failed` : "") +
    (throttled ? ` · ${throttled} throttled (reserved concurrency)` : "");
}

/** The batch as a bar: warm, cold, failed and throttled calls as they end, the rest still to come. */
function renderBatchBar(total, parts) {
  const bar = $("batch-bar");
  const done = parts.cold + parts.warm + parts.failed + parts.throttled;
  bar.hidden = false;
  bar.setAttribute("aria-valuemax", total);
  bar.setAttribute("aria-valuenow", done);
  bar.setAttribute("aria-valuetext", `${done} of ${total} done`);
  bar.innerHTML = ["warm", "cold", "failed", "throttled"]
    .filter((k) => parts[k] > 0)
    .map((k) => `<span class="seg ${k}" style="width:${(100 * parts[k]) / total}%" title="${parts[k]} ${k}"></span>`)
    .join("");
}

function renderIsolation() {
  const iso = boot.isolation;
  const weak = iso.weak || [];
  if (iso.level !== "strong") {
    const banner = $("isolation-banner");
    banner.hidden = false;
    banner.innerHTML =
      `<b>Isolation on this host: ${esc(iso.level)}, weaker than Lambda's.</b> Weak: ` +
      (weak.length ? weak.map((f) => `<b>${esc(f.name)}</b> (${esc(f.level)}: ${esc(f.detail)})`).join("; ") : "see Isolation below") +
      ".";
  }
  $("isolation-body").innerHTML =
    `<p>Isolation level on this host: <b>${esc(iso.level)}</b>.</p>` +
    (weak.length ? `<p>Weaker than Lambda:</p><ul>${weak.map((f) => `<li><b>${esc(f.name)}</b> (${esc(f.level)}): ${esc(f.detail)}</li>`).join("")}</ul>` : "") +
    ((iso.notes || []).length ? `<p>Known differences:</p><ul>${iso.notes.map((n) => `<li>${esc(n)}</li>`).join("")}</ul>` : "");
}

// -- timeline controls ----------------------------------------------------------------------

$("tl-window").addEventListener("change", (e) => timeline.setWindow(e.target.value));
$("tl-follow").addEventListener("change", (e) => timeline.setFollow(e.target.checked));
$("tl-earlier").addEventListener("click", () => timeline.pan(-1));
$("tl-later").addEventListener("click", () => timeline.pan(1));

// -- start ----------------------------------------------------------------------------------

renderIsolation();
renderNow();
setInterval(renderAlive, 1_000);
connect();

// What the page knows about a function's invocations and execution environments.
// Built from the boot data or a snapshot (load), then kept in step by the event stream
// (apply). The timeline, the table and the lists only read it.

const INSTANCE_IN_PAYLOAD = /"instance"\s*:\s*"([^"]+)"/;
const INSTANCE_IN_LOG = /\binstance ([A-Za-z0-9_.:-]+)/;
const MAX_LANES = 300; // environments kept on the timeline; the oldest shut-down ones go first
const MAX_PENDING_LOG_LINES = 500; // Init output waiting for the call it belongs to
const MAX_SERVICE_MARKS = 50; // lab-service markers kept per lane (the engine rate-limits them too)

export const ENDED = new Set(["success", "error", "timeout", "failure", "refused", "throttled"]);

export function shortId(id, n = 8) {
  return id ? String(id).replace(/-/g, "").slice(0, n) : "";
}

function ms(iso) {
  return iso ? Date.parse(iso) : null;
}

/** The instance id a handler reported, from a response preview or a function log line. */
export function instanceFrom(text, fromLog = false) {
  if (!text) return null;
  const found = (fromLog ? INSTANCE_IN_LOG : INSTANCE_IN_PAYLOAD).exec(text);
  return found ? found[1] : null;
}

export class LabModel {
  constructor() {
    this.clear();
  }

  clear() {
    this.seq = 0;
    this.invocations = new Map(); // request_id → invocation
    this.order = []; // request ids, newest first
    this.lanes = new Map(); // environment id → lane, in the order they appeared
    this.numbered = 0; // the "#" of the newest invocation
    this.ended = 0;
    this.version = 0; // bumped on every change, for cheap "did anything change" checks
  }

  // -- loading: the boot data or a snapshot ---------------------------------------------

  /** Replace everything with a list of invocations (newest first) and the live environments. */
  load(invocations, environments, seq) {
    this.clear();
    this.seq = seq || 0;
    const oldestFirst = [...invocations].reverse().map((row) => this._addRow(row));
    this._rebuildLanes(oldestFirst, environments || []);
    this.version++;
  }

  _addRow(row) {
    const inv = this._invocation(row.request_id, ms(row.created));
    Object.assign(inv, row, {
      created: ms(row.created) ?? inv.created,
      ended: ms(row.ended),
      logs: null, // fetched from the API when its log is opened
      logsComplete: false,
    });
    if (inv.ended && inv.duration_ms != null) inv.started = inv.ended - inv.duration_ms;
    if (!inv.memory_mb) inv.memory_mb = memoryFromReport(inv.report);
    if (ENDED.has(inv.status)) this.ended++;
    return inv;
  }

  /** Lanes from what the rows tell: each call's span, Init before a cold one, frozen gaps. */
  _rebuildLanes(rows, environments) {
    for (const row of rows) {
      if (!row.environment || row.started == null) continue;
      const lane = this._lane(row.environment, row.started - (row.init_duration_ms || 0));
      lane.revision = row.revision;
      const last = lane.spans[lane.spans.length - 1];
      if (last && last.kind === "invoke" && last.end != null && row.started > last.end) {
        lane.spans.push({ kind: "frozen", start: last.end, end: row.started });
      }
      if (row.cold && row.init_duration_ms) {
        lane.spans.push({ kind: "init", start: row.started - row.init_duration_ms, end: row.started });
      }
      lane.spans.push(invokeSpan(row, row.started, row.ended));
      if (isReset(row)) lane.marks.push({ kind: "reset", time: row.ended, reason: row.error_type });
      lane.instance = instanceFrom(row.response) || lane.instance;
      lane.changed = row.ended;
    }
    const live = new Map(environments.map((e) => [e.id, e]));
    for (const lane of this.lanes.values()) {
      const env = live.get(lane.id);
      if (env) continue;
      lane.state = "gone"; // shut down while no page was watching: when and why is not kept
      lane.gone = { time: lane.changed, reason: null };
    }
    for (const env of environments) {
      const lane = this._lane(env.id, env.since);
      lane.born = Math.min(lane.born, env.since || lane.born);
      lane.state = env.state;
      lane.revision = env.revision ?? lane.revision;
      lane.initType = env.init ?? lane.initType;
      lane.changed = env.changed || lane.changed;
      const last = lane.spans[lane.spans.length - 1];
      if (env.state === "frozen") {
        lane.open.frozen = { kind: "frozen", start: last?.end ?? env.changed, end: null };
        lane.spans.push(lane.open.frozen);
      }
    }
  }

  // -- the event stream ------------------------------------------------------------------

  /** Apply one event; false if it was already seen (seq at or below the last applied). */
  apply(ev) {
    if (typeof ev.seq === "number") {
      if (ev.seq <= this.seq) return false;
      this.seq = ev.seq;
    }
    const t = ev.time;
    const lane = ev.environment ? this._lane(ev.environment, t) : null;
    if (lane) {
      lane.changed = t;
      if (ev.revision != null) lane.revision = ev.revision;
    }
    switch (ev.type) {
      case "init.start": {
        closeInit(lane, t);
        if (ev.phase !== "invoke") lane.state = "initializing";
        lane.initFailed = false;
        if (ev.phase !== "invoke" && ev.initialization_type) lane.initType = ev.initialization_type;
        lane.open.init = { kind: "runtime", start: t, end: null, phase: ev.phase, type: ev.initialization_type };
        lane.spans.push(lane.open.init);
        if (ev.phase !== "invoke") lane.pendingLogs = [];
        break;
      }
      case "init.runtime.done": {
        const started = closeInit(lane, t);
        lane.open.init = { kind: "function", start: t, end: null, phase: started?.phase };
        lane.spans.push(lane.open.init);
        break;
      }
      case "init.function.done":
        closeInit(lane, t, { duration_ms: ev.duration_ms });
        break;
      case "init.report":
        closeInit(lane, t, { failed: true, error_type: ev.error_type, status: ev.status });
        for (const span of lane.spans.slice(-2)) {
          if (span.kind === "runtime" || span.kind === "function") {
            Object.assign(span, { failed: true, error_type: ev.error_type, status: ev.status });
          }
        }
        lane.initFailed = true;
        break;
      case "thaw":
        closeOpen(lane, "frozen", t);
        lane.state = "busy";
        break;
      case "invoke.start": {
        closeOpen(lane, "frozen", t);
        lane.state = "busy";
        if (ev.init_reason === "always_cold") lane.alwaysCold = true;
        const inv = this._invocation(ev.request_id, t);
        Object.assign(inv, {
          status: "running",
          environment: ev.environment,
          cold: ev.cold,
          init_reason: ev.init_reason ?? inv.init_reason,
          init_reason_text: ev.init_reason_text ?? inv.init_reason_text,
          revision: ev.revision ?? inv.revision,
          started: t,
          sawStart: true,
          logs: [...lane.pendingLogs, ...(inv.logs || [])],
        });
        lane.pendingLogs = [];
        lane.open.invoke = invokeSpan(inv, t, null);
        lane.spans.push(lane.open.invoke);
        break;
      }
      case "log": {
        const inv = ev.request_id ? this.invocations.get(ev.request_id) : null;
        if (inv) (inv.logs ||= []).push(ev.line);
        else if (lane && lane.pendingLogs.length < MAX_PENDING_LOG_LINES) lane.pendingLogs.push(ev.line);
        if (lane && ev.stream === "function") lane.instance = instanceFrom(ev.line, true) || lane.instance;
        break;
      }
      case "invoke.end":
        this._end(ev, lane, t);
        break;
      case "freeze":
        lane.state = "frozen";
        closeOpen(lane, "frozen", t);
        lane.open.frozen = { kind: "frozen", start: t, end: null };
        lane.spans.push(lane.open.frozen);
        break;
      case "reset":
        lane.marks.push({ kind: "reset", time: t, reason: ev.reason });
        break;
      case "service.connect":
      case "service.disconnect": {
        // the lab service (not Lambda's): a connection opened, or one the service hung up
        const kind = ev.type === "service.connect" ? "connect" : "hangup";
        lane.marks.push({ kind, time: t, reason: ev.reason, opened: ev.connections_opened, open: ev.connections_open });
        const service = lane.marks.filter((m) => m.kind === "connect" || m.kind === "hangup");
        if (service.length > MAX_SERVICE_MARKS) lane.marks.splice(lane.marks.indexOf(service[0]), 1);
        break;
      }
      case "shutdown":
        for (const kind of ["init", "invoke", "frozen"]) closeOpen(lane, kind, t);
        lane.state = "gone";
        lane.gone = { time: t, reason: ev.reason, idle_s: ev.idle_s, detail: ev.detail };
        lane.marks.push({ kind: "shutdown", time: t, reason: ev.reason, idle_s: ev.idle_s, detail: ev.detail });
        this._trimLanes();
        break;
      default:
        return true; // a newer server's event: numbered, so still counted as seen
    }
    this.version++;
    return true;
  }

  _end(ev, lane, t) {
    const inv = this._invocation(ev.request_id, t);
    const wasEnded = ENDED.has(inv.status);
    Object.assign(inv, {
      status: ev.status,
      cold: ev.cold ?? inv.cold,
      environment: ev.environment || inv.environment || null,
      error_type: ev.error_type || null,
      duration_ms: ev.duration_ms,
      billed_duration_ms: ev.billed_duration_ms,
      max_memory_used_mb: ev.max_memory_used_mb,
      init_duration_ms: ev.init_duration_ms,
      memory_mb: memoryFromReport(ev.report) || inv.memory_mb,
      report: ev.report,
      response: ev.payload ?? "",
      response_truncated: Boolean(ev.payload_truncated),
      response_bytes: ev.payload_bytes,
      init_reason: ev.init_reason ?? inv.init_reason,
      init_reason_text: ev.init_reason_text ?? inv.init_reason_text,
      revision: ev.revision ?? inv.revision,
      log_truncated: ev.log_truncated,
      ended: t,
      logsComplete: Boolean(inv.sawStart) && !ev.log_truncated,
    });
    if (inv.started == null && ev.duration_ms != null) inv.started = t - ev.duration_ms;
    if (!wasEnded) this.ended++;
    if (!lane) return;
    const span = lane.open.invoke && lane.open.invoke.rid === inv.request_id ? lane.open.invoke : null;
    if (span) {
      Object.assign(span, invokeSpan(inv, span.start, t));
      lane.open.invoke = null;
    } else {
      lane.spans.push(invokeSpan(inv, inv.started ?? t, t));
    }
    lane.instance = instanceFrom(inv.response) || lane.instance;
  }

  // -- helpers ---------------------------------------------------------------------------

  /** The invocation with this id, made (queued, numbered as the newest) if not seen yet. */
  _invocation(id, created) {
    let inv = this.invocations.get(id);
    if (!inv) {
      inv = { request_id: id, n: ++this.numbered, status: "queued", created: created ?? Date.now(), logs: null };
      this.invocations.set(id, inv);
      this.order.unshift(id);
    }
    return inv;
  }

  /** Calls the page asked for (the invoke answer), shown as queued until they start. */
  addRequested(ids, { batch, mode, revision }) {
    const now = Date.now();
    for (const [i, id] of ids.entries()) {
      const inv = this._invocation(id, now);
      Object.assign(inv, { batch, mode, position: i + 1 });
      inv.revision ??= revision;
    }
    this.version++;
  }

  _lane(id, born) {
    let lane = this.lanes.get(id);
    if (!lane) {
      lane = {
        id,
        short: shortId(id, 6),
        instance: null,
        state: "initializing",
        born: born ?? Date.now(),
        changed: born ?? Date.now(),
        revision: null,
        spans: [],
        marks: [],
        open: { init: null, invoke: null, frozen: null },
        pendingLogs: [],
        gone: null,
      };
      this.lanes.set(id, lane);
    }
    return lane;
  }

  _trimLanes() {
    if (this.lanes.size <= MAX_LANES) return;
    for (const lane of this.lanes.values()) {
      if (this.lanes.size <= MAX_LANES) break;
      if (lane.gone) this.lanes.delete(lane.id);
    }
  }

  /** Mark live environments as shutting down (asked for; their shutdown events follow). */
  markShuttingDown() {
    for (const lane of this.lanes.values()) if (!lane.gone) lane.state = "shutting down";
    this.version++;
  }

  liveLanes() {
    return [...this.lanes.values()].filter((lane) => !lane.gone);
  }

  earliest() {
    let first = Infinity;
    for (const lane of this.lanes.values()) first = Math.min(first, lane.born);
    return Number.isFinite(first) ? first : null;
  }

  rows() {
    return this.order;
  }

  get(id) {
    return this.invocations.get(id);
  }
}

function invokeSpan(inv, start, end) {
  return {
    kind: "invoke",
    rid: inv.request_id,
    n: inv.n,
    start,
    end,
    cold: inv.cold,
    status: end == null ? "running" : inv.status,
    error_type: inv.error_type,
    reason: inv.init_reason_text,
    duration_ms: inv.duration_ms,
    billed_duration_ms: inv.billed_duration_ms,
    max_memory_used_mb: inv.max_memory_used_mb,
    memory_mb: inv.memory_mb,
  };
}

function closeInit(lane, t, extra = {}) {
  const span = lane.open.init;
  if (!span) return null;
  span.end = t;
  Object.assign(span, extra);
  lane.open.init = null;
  return span;
}

function closeOpen(lane, kind, t) {
  const span = lane.open[kind];
  if (span) {
    span.end = t;
    if (kind === "invoke") span.status = "failure";
    lane.open[kind] = null;
  }
}

/** A call after which the runtime was killed and the environment reset (timeout, crash, OOM). */
function isReset(row) {
  return row.status === "timeout" || /^Runtime\.(OutOfMemory|ExitError)/.test(row.error_type || "");
}

export function memoryFromReport(report) {
  const found = /Memory Size: (\d+) MB/.exec(report || "");
  return found ? Number(found[1]) : null;
}

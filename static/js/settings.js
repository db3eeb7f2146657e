// The function's settings as form fields: filled from the function, read back with Lambda's
// ranges (a bad value is refused here, with the reason next to the field), and errors shown
// next to the field they are about, whether the page or the server found them.

const FIELD_IDS = {
  name: "fn-name",
  code: "code-editor",
  event: "event-editor",
  memory_mb: "set-memory_mb",
  timeout_s: "set-timeout_s",
  tmp_mb: "set-tmp_mb",
  idle_timeout_s: "set-idle_timeout_s",
  reserved_concurrency: "set-reserved_concurrency",
  provisioned_concurrency: "set-provisioned_concurrency",
  always_cold: "set-always_cold",
  handler: "set-handler",
  environment: "set-environment",
};

const HANDLER = /^[A-Za-z0-9_][A-Za-z0-9_/.-]*\.[A-Za-z_][A-Za-z0-9_]*$/;
const ENV_NAME = /^[A-Za-z][A-Za-z0-9_]*$/;

function wholeNumber(label, low, high, unit) {
  return (raw) => {
    const text = raw.trim();
    if (text === "") throw new Error(`${label} is required`);
    const value = Number(text);
    if (!Number.isInteger(value)) throw new Error(`${label} must be a whole number of ${unit}`);
    if (value < low || value > high) {
      throw new Error(`${label} must be between ${low.toLocaleString("en")} and ${high.toLocaleString("en")} ${unit}`);
    }
    return value;
  };
}

function seconds(raw) {
  const text = raw.trim();
  const value = Number(text);
  if (text === "" || !Number.isFinite(value)) throw new Error("Idle eviction must be a number of seconds");
  if (value < 1 || value > 14400) throw new Error("Idle eviction must be between 1 and 14,400 seconds");
  return value;
}

function handler(raw) {
  const value = raw.trim();
  if (!HANDLER.test(value) || value.length > 128) {
    throw new Error("Handler must look like file.function, e.g. lambda_function.lambda_handler");
  }
  return value;
}

/** KEY=VALUE lines to an object; blank lines and # comments are skipped. */
export function parseEnvironment(text) {
  const env = {};
  text.split("\n").forEach((line, i) => {
    if (!line.trim() || line.trim().startsWith("#")) return;
    const eq = line.indexOf("=");
    if (eq < 1) throw new Error(`Line ${i + 1}: write KEY=VALUE`);
    const key = line.slice(0, eq).trim();
    if (!ENV_NAME.test(key)) {
      throw new Error(`Line ${i + 1}: "${key}" is not a valid name (letters, digits and _, starting with a letter)`);
    }
    if (key in env) throw new Error(`Line ${i + 1}: ${key} is set twice`);
    env[key] = line.slice(eq + 1);
  });
  const size = Object.entries(env).reduce((n, [k, v]) => n + k.length + v.length, 0);
  if (size > 4096) throw new Error(`Environment variables total ${size.toLocaleString("en")} bytes: over Lambda's 4 KB`);
  return env;
}

/** Reserved concurrency: empty for none, else a whole number 0–100. */
function reservedConcurrency(text) {
  if (String(text).trim() === "") return null;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0 || value > 100) {
    throw new Error("Reserved concurrency must be a whole number from 0 to 100, or empty");
  }
  return value;
}

export function formatEnvironment(env) {
  return Object.entries(env || {})
    .map(([k, v]) => `${k}=${v}`)
    .join("\n");
}

export class SettingsForm {
  constructor({ limits, onInput }) {
    const [memLow, memHigh] = limits.memory_mb;
    const [toLow, toHigh] = limits.timeout_s;
    const [tmpLow, tmpHigh] = limits.tmp_mb;
    this.readers = {
      memory_mb: wholeNumber("Memory", memLow, memHigh, "MB"),
      timeout_s: wholeNumber("Timeout", toLow, toHigh, "seconds"),
      tmp_mb: wholeNumber("Ephemeral storage", tmpLow, tmpHigh, "MB"),
      idle_timeout_s: seconds,
      reserved_concurrency: reservedConcurrency,
      provisioned_concurrency: wholeNumber("Provisioned concurrency", ...limits.provisioned_concurrency, "environments"),
      always_cold: (_, el) => el.checked,
      handler,
      environment: parseEnvironment,
    };
    const ranges = { memory_mb: limits.memory_mb, timeout_s: limits.timeout_s, tmp_mb: limits.tmp_mb, provisioned_concurrency: limits.provisioned_concurrency };
    for (const [name, [low, high]] of Object.entries(ranges)) {
      Object.assign(this.input(name), { min: low, max: high });
    }
    for (const name of Object.keys(this.readers)) {
      const el = this.input(name);
      el.addEventListener("input", () => {
        this.clearError(name);
        onInput?.(name);
      });
      el.addEventListener("change", () => this.check(name));
    }
  }

  input(name) {
    return document.getElementById(FIELD_IDS[name]);
  }

  fill(fn) {
    this.input("memory_mb").value = fn.memory_mb;
    this.input("timeout_s").value = fn.timeout_s;
    this.input("tmp_mb").value = fn.tmp_mb;
    this.input("idle_timeout_s").value = fn.idle_timeout_s;
    this.input("reserved_concurrency").value = fn.reserved_concurrency ?? "";
    this.input("provisioned_concurrency").value = fn.provisioned_concurrency ?? 0;
    this.input("always_cold").checked = Boolean(fn.always_cold);
    this.input("handler").value = fn.handler;
    this.input("environment").value = formatEnvironment(fn.environment);
  }

  /** One field's value, or null with its error shown. */
  check(name) {
    try {
      const el = this.input(name);
      const value = this.readers[name](el.value, el);
      this.clearError(name);
      return { value };
    } catch (err) {
      this.showError(name, err.message);
      return null;
    }
  }

  /** Every field read back; {values} or {invalid: [names]} with the errors shown. */
  read() {
    const values = {};
    const invalid = [];
    for (const name of Object.keys(this.readers)) {
      const got = this.check(name);
      if (got) values[name] = got.value;
      else invalid.push(name);
    }
    return invalid.length ? { invalid } : { values };
  }

  /** Show a reason next to a field (a page check or a server error's `field`). */
  showError(name, message) {
    const id = FIELD_IDS[name] || name;
    const el = document.getElementById(id);
    const box = document.getElementById(`err-${name}`);
    if (!box) return false;
    box.textContent = message;
    const target = el?.classList.contains("editor") ? el.querySelector(".cm-content") : el;
    target?.setAttribute("aria-invalid", "true");
    el?.classList.add("invalid");
    if (target && !(target.getAttribute("aria-describedby") || "").includes(box.id)) {
      target.setAttribute("aria-describedby", `${target.getAttribute("aria-describedby") || ""} ${box.id}`.trim());
    }
    return true;
  }

  clearError(name) {
    const el = document.getElementById(FIELD_IDS[name] || name);
    const box = document.getElementById(`err-${name}`);
    if (box) box.textContent = "";
    const target = el?.classList.contains("editor") ? el.querySelector(".cm-content") : el;
    target?.removeAttribute("aria-invalid");
    el?.classList.remove("invalid");
  }

  focus(name) {
    const el = document.getElementById(FIELD_IDS[name] || name);
    (el?.classList.contains("editor") ? el.querySelector(".cm-content") : el)?.focus();
  }
}

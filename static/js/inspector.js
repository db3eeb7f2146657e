// The State inspector: a frozen environment's module globals and its /tmp, shown without
// running any of the function's code (the server's answer: docs/api.md). Everything in it
// comes from the jail, so every string is escaped.

import { esc } from "./timeline.js";

/** The lane's control that opens the inspector (beside evict, reset, age). */
export function inspectButton(lane) {
  return (
    `<button type="button" class="mini" data-env="${esc(lane.id)}" data-action="inspect"` +
    ` aria-label="Inspect the state of environment ${esc(lane.short)}"` +
    ` title="Its globals and /tmp, as frozen: no code of yours runs to show them">inspect</button>`
  );
}

function fmtBytes(n) {
  if (n == null) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}

function fmtTime(ms) {
  return ms ? new Date(ms).toLocaleTimeString([], { hour12: false }) : "–";
}

const KINDS = { file: "file", dir: "folder", link: "link", other: "other" };

export class Inspector {
  /**
   * @param {HTMLElement} panel where the inspector is drawn (hidden until opened)
   * @param {{fetchState: (envId: string) => Promise<object>, shortId: (id: string) => string}} deps
   */
  constructor(panel, { fetchState, shortId }) {
    this.panel = panel;
    this.fetchState = fetchState;
    this.shortId = shortId;
    this.envId = null;
    this.loads = 0; // answers drawn: a page signal for browser tests
    panel.addEventListener("click", (e) => {
      const button = e.target.closest("button[data-inspector]");
      if (!button) return;
      if (button.dataset.inspector === "close") this.close();
      else if (button.dataset.inspector === "refresh") this.open(this.envId);
    });
  }

  async open(envId) {
    this.envId = envId;
    const asked = envId;
    this.panel.hidden = false;
    this.panel.setAttribute("aria-busy", "true");
    this.panel.innerHTML = this.head(`Inspecting environment <code>${esc(this.shortId(envId))}</code>…`);
    let html;
    try {
      html = this.render(await this.fetchState(envId));
    } catch (err) {
      html =
        this.head(`Environment <code>${esc(this.shortId(envId))}</code>`) +
        `<p class="inspector-error" role="alert">${esc(err.message || String(err))}</p>`;
    }
    if (this.envId !== asked) return; // another environment was asked for meanwhile
    this.panel.innerHTML = html;
    this.panel.removeAttribute("aria-busy");
    this.loads += 1;
    this.panel.querySelector("h3")?.focus();
  }

  /** Say so when the inspected environment is no longer alive (what is shown is then history). */
  keepOnly(liveIds) {
    if (!this.envId || this.panel.hidden || liveIds.includes(this.envId) || this.panel.querySelector(".inspector-gone")) return;
    this.panel
      .querySelector(".inspector-head")
      ?.insertAdjacentHTML("afterend", `<p class="inspector-gone" role="status">This environment has been shut down since: its globals and /tmp are gone.</p>`);
  }

  close() {
    this.envId = null;
    this.panel.hidden = true;
    this.panel.innerHTML = "";
  }

  head(title) {
    return (
      `<div class="inspector-head"><h3 id="inspector-title" tabindex="-1">${title}</h3>` +
      `<span class="inspector-actions">` +
      `<button type="button" class="mini" data-inspector="refresh">refresh</button>` +
      `<button type="button" class="mini" data-inspector="close" aria-label="Close the inspector">close</button>` +
      `</span></div>`
    );
  }

  render(state) {
    const env = `<code title="${esc(state.environment)}">${esc(this.shortId(state.environment))}</code>`;
    const after =
      state.after == null ? "" : state.after === "" ? "after its Init" : `after call <code>${esc(this.shortId(state.after))}</code>`;
    const when = state.taken_at
      ? `Globals as described ${after} at <time>${esc(fmtTime(state.taken_at))}</time>, just before it was frozen`
      : "No globals described";
    return (
      this.head(`State of environment ${env} <span class="state frozen">‖ ${esc(state.state)}</span>`) +
      `<p class="explain">${when}; <code>/tmp</code> listed at <time>${esc(fmtTime(state.listed_at))}</time>. ` +
      `Nothing ran in the environment to show this: no call, no <code>__repr__</code> of yours.` +
      (state.threads != null ? ` Threads in the runtime: <b>${esc(state.threads)}</b>.` : "") +
      `</p>` +
      this.namesTable(state) +
      this.tmpTable(state)
    );
  }

  namesTable(state) {
    if (!state.names) return `<h4>Module globals</h4><p class="note">${esc(state.note || "None described.")}</p>`;
    const rows = state.names
      .map(
        (n) =>
          `<tr><th scope="row"><code>${esc(n.name)}</code></th><td>${esc(n.type)}</td>` +
          `<td><code class="value">${esc(n.text)}</code></td></tr>`,
      )
      .join("");
    const more = state.names_left_out ? `<p class="note">…and ${esc(state.names_left_out)} more not shown.</p>` : "";
    return (
      `<h4 id="inspector-names">Module globals <small>${state.names.length}</small></h4>` +
      (rows
        ? `<table class="inspector-table" aria-labelledby="inspector-names"><thead><tr><th scope="col">name</th><th scope="col">type</th><th scope="col">value</th></tr></thead><tbody>${rows}</tbody></table>`
        : `<p class="note">No globals but the module's own.</p>`) +
      more
    );
  }

  tmpTable(state) {
    if (!state.tmp) return `<h4>/tmp</h4><p class="note">${esc(state.tmp_error || "Not listed.")}</p>`;
    const rows = state.tmp
      .map(
        (e) =>
          `<tr><th scope="row"><code>${esc(e.path)}</code>` +
          (e.kind === "link" ? ` <span class="link-target">→ <code>${esc(e.target ?? "?")}</code> (not followed)</span>` : "") +
          `</th><td class="num">${esc(fmtBytes(e.size))}</td><td>${esc(KINDS[e.kind] || e.kind)}</td></tr>`,
      )
      .join("");
    const cut = state.tmp_truncated ? `<p class="note">Only the first entries (at most 200, four levels deep) are listed.</p>` : "";
    return (
      `<h4 id="inspector-tmp">/tmp <small>${state.tmp.length}</small></h4>` +
      (rows
        ? `<table class="inspector-table" aria-labelledby="inspector-tmp"><thead><tr><th scope="col">path</th><th scope="col" class="num">size</th><th scope="col">kind</th></tr></thead><tbody>${rows}</tbody></table>`
        : `<p class="note">Empty.</p>`) +
      cut
    );
  }
}

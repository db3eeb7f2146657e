// The lab page's Share dialog: a title, whether to include the recorded run and the environment
// variable values, then one POST that answers with the link (the same content, the same link).

const MAX_CALLS = 20; // LAB_SHARE_MAX_INVOCATIONS: the newest calls the page shows

const $ = (id) => document.getElementById(id);

export class ShareDialog {
  /**
   * @param {object} opts functionName(), save() (resolves false if the function could not be
   *   saved), requestIds() (the ended calls the page shows, newest first), create(body)
   */
  constructor({ functionName, save, requestIds, create }) {
    this.functionName = functionName;
    this.save = save;
    this.requestIds = requestIds;
    this.create = create;
    this.dialog = $("share-dialog");
    this.busy = false;
    $("share").addEventListener("click", () => this.open());
    $("share-close").addEventListener("click", () => this.dialog.close());
    $("share-create").addEventListener("click", () => this.submit());
    $("share-copy").addEventListener("click", () => this.copy());
    $("share-env-values").addEventListener("change", () => this.refresh());
    $("share-run").addEventListener("change", () => this.refresh());
    $("share-form").addEventListener("submit", (e) => {
      e.preventDefault(); // Enter in the title creates the link rather than closing the dialog
      this.submit();
    });
    for (const id of ["share-title", "share-run", "share-env-values"]) {
      $(id).addEventListener("input", () => ($("share-result").hidden = true));
    }
  }

  open() {
    $("share-title").value = this.functionName();
    $("share-result").hidden = true;
    $("share-url").value = "";
    $("share-said").textContent = "";
    this.error("");
    this.refresh();
    this.dialog.showModal();
    $("share-title").select();
  }

  refresh() {
    const shown = this.requestIds().length;
    const calls = Math.min(shown, MAX_CALLS);
    const run = $("share-run");
    run.disabled = calls === 0;
    const which = calls === 1 ? "the call" : `the ${calls}${shown > calls ? " newest" : ""} calls`;
    $("share-run-count").textContent = calls
      ? `(${which} on this page, to replay)`
      : "(no calls yet: invoke first to share a run)";
    $("share-env-warning").hidden = !(run.checked && calls && !$("share-env-values").checked);
  }

  error(message, field = null) {
    $("err-share").textContent = field === "title" ? "" : message;
    $("err-share-title").textContent = field === "title" ? message : "";
    $("share-title").setAttribute("aria-invalid", field === "title" ? "true" : "false");
  }

  async submit() {
    if (this.busy) return;
    this.busy = true;
    const button = $("share-create");
    button.disabled = true;
    this.error("");
    try {
      if (!(await this.save())) {
        this.error("Not shared: the function could not be saved (see the field marked in red).");
        return;
      }
      const ids = this.requestIds().slice(0, MAX_CALLS);
      const includeRun = $("share-run").checked && ids.length > 0;
      const answer = await this.create({
        title: $("share-title").value,
        include_run: includeRun,
        include_env_values: $("share-env-values").checked,
        ...(includeRun ? { invocations: ids } : {}),
      });
      $("share-url").value = answer.url;
      $("share-open").href = answer.url;
      $("share-said").textContent = answer.created ? "New link made." : "This content was shared before: the same link.";
      $("share-result").hidden = false;
      $("share-url").select();
    } catch (err) {
      this.error(`${err.type ? `${err.type}: ` : ""}${err.message}`, err.field);
    } finally {
      this.busy = false;
      button.disabled = false;
    }
  }

  async copy() {
    const text = $("share-url").value;
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      $("share-url").select();
      document.execCommand("copy");
    }
    $("share-said").textContent = "Copied.";
  }
}

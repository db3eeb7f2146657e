// A scenario: run its plan on the student's function, then show each check and the prediction.
const section = document.querySelector(".scenario");
const attemptId = section.dataset.attempt;
const state = JSON.parse(document.getElementById("attempt-state").textContent);
const button = document.getElementById("run-scenario");
const status = document.getElementById("run-status");
const results = document.getElementById("results");

const csrf = () => document.cookie.split("; ").find((c) => c.startsWith("csrftoken="))?.split("=")[1] ?? "";
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

window.scenario = { state };

function show(s) {
  window.scenario.state = s;
  if (s.status === "running") {
    status.textContent = "Running the scenario…";
    button.disabled = true;
    return;
  }
  if (s.status === "failed") {
    status.textContent = "";
    results.innerHTML = `<p class="error"><strong>The run could not be carried out.</strong> ${esc(s.error)}</p>`;
    return;
  }
  if (s.status !== "done") return;
  button.disabled = true;
  status.textContent = s.passed ? "✓ Every check passed." : "✗ Some checks failed.";
  let html = "";
  if ("answer" in s) {
    html += `<div class="prediction-result ${s.prediction_right ? "ok" : "bad"}">
      <p><strong>You predicted</strong> ${esc(s.prediction)} · <strong>what happened</strong>: ${esc(s.answer)}
      ${s.prediction_right ? "✓ right" : "✗ not this time"}</p><p>${esc(s.explain)}</p></div>`;
  }
  html += `<ul class="checks">${s.results
    .map((r) => `<li class="${r.passed ? "ok" : "bad"}"><span aria-hidden="true">${r.passed ? "✓" : "✗"}</span>
      <span class="sr">${r.passed ? "passed" : "failed"}:</span> ${esc(r.explanation)} <span class="found">(${esc(r.found)})</span></li>`)
    .join("")}</ul>`;
  results.innerHTML = html;
}

async function poll() {
  for (let i = 0; i < 600; i++) {
    const answer = await fetch(`/attempts/${attemptId}`);
    const s = await answer.json();
    show(s);
    if (s.status === "done" || s.status === "failed") return;
    await new Promise((r) => setTimeout(r, 300));
  }
}

button.addEventListener("click", async () => {
  button.disabled = true;
  const answer = await fetch(`/attempts/${attemptId}/run`, { method: "POST", headers: { "X-CSRFToken": csrf() } });
  const body = await answer.json();
  if (!answer.ok) {
    status.textContent = body.error.message;
    button.disabled = false;
    return;
  }
  show(body);
  poll();
});

show(state);
if (state.status === "running") poll();

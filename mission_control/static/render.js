// Drawing the page's parts from API answers: health, the backups table, the schedule, the audit.
import { $, el, timeEl } from "./dom.js";
import { actionText, bothTimes, detailText, elapsedText, humanSize, localTime, sentence, utcTime } from "./format.js";

export function renderHealth(status) {
  const badge = $("health-verdict");
  const words = { pass: "Healthy", warn: "Needs attention", fail: "Failing" };
  badge.textContent = words[status.verdict] || status.verdict;
  badge.className = `badge ${status.verdict}`;
  const parts = [];
  if (status.last_success) {
    parts.push(`Last good backup: ${status.last_success.name}, ${localTime(status.last_success.at)}.`);
  }
  if (status.backups) {
    const n = status.backups.count;
    parts.push(`${n} ${n === 1 ? "file" : "files"}, ${humanSize(status.backups.total_size)} in all.`);
  }
  $("health-summary").textContent = parts.join(" ");
  $("health-reasons").replaceChildren(...(status.reasons || []).map((r) =>
    el("li", { className: status.verdict, text: sentence(r) })));
  $("updated").textContent = `Checked ${localTime(status.checked_at)}; this page refreshes itself every 30 seconds while it is open.`;
  renderOffsite(status.offsite || []);
}

function storedCell(t) {
  if (t.stored_size == null) return "—";
  const ratio = t.ratio == null ? "" : ` (${Math.round(t.ratio * 100)}% of the backup)`;
  return `${humanSize(t.stored_size)}${ratio}`;
}

function drillCell(t) {
  if (!t.drill) return el("span", { className: "muted", text: "never" });
  const when = el("span", { className: "when muted" }, timeEl(t.drill.finished_at, localTime(t.drill.finished_at)));
  if (t.drill.ok) return el("span", {}, el("span", { className: "ok", text: "✓ Passed" }), when);
  return el("span", {}, el("span", { className: "fail", text: `✗ Failed: ${t.drill.message}` }), when);
}

function offsiteResult(t) {
  if (t.ok === true) return el("span", { className: "ok", text: `✓ Copied ${t.backup || ""}`.trim() });
  if (t.ok === false) return el("span", { className: "fail", text: `✗ Failed: ${t.message || "unknown reason"}` });
  return el("span", { className: "muted", text: "No copy yet" });
}

/**
 * The off-site panel: each target, its last result and when, why it fails the verdict, what the
 * last copy takes there, and its last restore drill.
 */
export function renderOffsite(targets) {
  $("offsite").hidden = false;
  const configured = targets.filter((t) => t.configured);
  $("offsite-none").hidden = configured.length > 0;
  $("offsite-table").hidden = targets.length === 0;
  $("offsite-body").replaceChildren(...targets.map((t) => {
    const result = el("div", {}, offsiteResult(t));
    if (t.problem) result.append(el("span", { className: "problem fail", text: sentence(t.problem) }));
    // Copies past the retention count whose Object Lock has not expired: expected, not a failure.
    for (const h of t.held || []) {
      result.append(el("span", { className: "held muted" }, `${h.name} held until `,
        h.until ? timeEl(h.until, utcTime(h.until)) : "its lock expires"));
    }
    for (const note of t.notes || []) result.append(el("span", { className: "note muted", text: sentence(note) }));
    const name = el("span", { className: "filename", text: t.target });
    return el("tr", { "data-target": t.target },
      el("th", { scope: "row", "data-label": "Target" }, t.configured ? name : el("span", {}, name, el("span", { className: "muted", text: " (no longer configured)" }))),
      el("td", { "data-label": "Last result" }, result),
      el("td", { "data-label": "When" }, t.finished_at ? timeEl(t.finished_at, localTime(t.finished_at)) : "—"),
      el("td", { "data-label": "Last good copy" }, t.last_success_at ? timeEl(t.last_success_at, localTime(t.last_success_at)) : "never"),
      el("td", { "data-label": "Stored" }, storedCell(t)),
      el("td", { "data-label": "Restore drill" }, drillCell(t)));
  }));
}

function verifiedCell(b) {
  const when = () => el("span", { className: "when muted" }, timeEl(b.verified_at, localTime(b.verified_at)));
  if (b.verified_ok === true) return el("span", {}, el("span", { className: "ok", text: "✓ Verified" }), when());
  if (b.verified_ok === false) return el("span", {}, el("span", { className: "fail", text: "✗ Failed verification" }), when());
  return el("span", { className: "muted", text: "Not verified" });
}

function actionButton(text, label, handler, className = "secondary") {
  const button = el("button", { type: "button", className, "aria-label": label },
    el("span", { className: "spinner", "aria-hidden": "true" }), el("span", { className: "label", text }));
  button.addEventListener("click", () => handler(button));
  return button;
}

/**
 * Fill the backups table. `files`: whether verify, download and restore exist on this service;
 * `on`: the handlers `{ verify(name, button), restore(name), remove(name) }`.
 */
export function renderBackups(backups, files, on) {
  const body = $("backups-body");
  body.replaceChildren();
  $("backups-empty").hidden = backups.length > 0;
  $("backups-table").hidden = backups.length === 0;
  for (const b of backups) {
    const actions = el("div", { className: "row-actions" });
    if (files) {
      actions.append(
        el("a", { className: "button secondary", href: `/api/backup/download?name=${encodeURIComponent(b.name)}`,
                  download: b.name, "aria-label": `Download ${b.name}`, text: "Download" }),
        actionButton("Verify", `Verify ${b.name}`, (btn) => on.verify(b.name, btn)),
        actionButton("Restore", `Restore ${b.name}`, () => on.restore(b.name)),
      );
    }
    actions.append(actionButton("Delete", `Delete ${b.name}`, () => on.remove(b.name), "danger"));
    const row = el("tr", { "data-name": b.name },
      el("th", { scope: "row", "data-label": "Name" }, el("span", { className: "filename", text: b.name })),
      el("td", { "data-label": "Size", title: `${b.size} bytes` }, humanSize(b.size)),
      el("td", { "data-label": "Created" }, el("div", {},
        el("span", { className: "local-time" }, timeEl(b.created_at, localTime(b.created_at))),
        el("span", { className: "utc-time muted" }, timeEl(b.created_at, utcTime(b.created_at))))),
    );
    if (files) row.append(el("td", { "data-label": "Verified" }, verifiedCell(b)));
    else row.append(el("td", { className: "needs-files" }));
    row.append(el("td", { className: "actions-cell" }, actions));
    body.append(row);
  }
}

/** The schedule facts; `now` is the service's time in unix ms (for how long a run has gone on). */
export function renderTask(task, now) {
  const next = $("next-run");
  const last = $("last-result");
  if (!task) {
    next.textContent = "—";
    last.textContent = "—";
    return;
  }
  const when = task.nextRun ? bothTimes(task.nextRun / 1000) : "—";
  next.textContent = task.enabled ? when : `${when} — will not run while automatic backup is off`;
  const result = task.lastResult;
  last.className = "";
  if (task.running) {
    last.textContent = task.runningSince == null ? "Running now…" :
      `Running now… ${elapsedText((now - task.runningSince) / 1000)}`;
  } else if (!result) {
    last.textContent = "No run yet";
  } else {
    last.className = result.ok ? "ok" : "fail";
    const at = result.timestamp ? ` — ${bothTimes(result.timestamp / 1000)}` : "";
    last.textContent = `${result.ok ? "✓ Succeeded" : "✗ Failed"}: ${result.message}${at}`;
  }
}

export function renderAudit(events) {
  const body = $("audit-body");
  body.replaceChildren();
  for (const e of events) {
    body.append(el("tr", {},
      el("td", { "data-label": "When", title: utcTime(e.created_at) }, timeEl(e.created_at, localTime(e.created_at))),
      el("td", { "data-label": "Who", text: e.actor || "—" }),
      el("td", { "data-label": "What", text: actionText(e.action) }),
      el("td", { "data-label": "Details", className: "detail", text: detailText(e) }),
    ));
  }
  if (!body.children.length) {
    body.append(el("tr", {}, el("td", { colspan: "4", className: "muted", text: "Nothing yet." })));
  }
}

// Drawing the page's parts from API answers: health, the backups table and its pages, the schedule,
// the audit.
import { $, el, timeEl } from "./dom.js";
import { actionText, bothTimes, detailText, elapsedText, humanSize, localTime, sentence, utcTime } from "./format.js";

export function renderHealth(status) {
  const badge = $("health-verdict");
  const words = { pass: "Healthy", warn: "Needs attention", fail: "Failing" };
  badge.textContent = words[status.verdict] || status.verdict;
  badge.className = `badge ${status.verdict}`;
  const parts = [];
  if (status.last_success) {  // the name and the time are never broken across lines
    parts.push("Last good backup: ", el("span", { className: "filename nowrap", text: status.last_success.name }),
               ", ", el("span", { className: "nowrap", text: localTime(status.last_success.at) }), ". ");
  }
  if (status.backups) {
    const n = status.backups.count;
    parts.push(`${n} ${n === 1 ? "file" : "files"}, ${humanSize(status.backups.total_size)} in all.`);
  }
  $("health-summary").replaceChildren(...parts);
  $("health-reasons").replaceChildren(...(status.reasons || []).map((r) =>
    el("li", { className: status.verdict, text: sentence(r) })));
  $("updated").textContent = `Checked ${localTime(status.checked_at)}; this page refreshes itself every 30 seconds while it is open.`;
  renderOffsite(status.offsite || []);
}

function storedCell(t) {
  if (t.kind === "delta") {
    // An incremental copy: what it uploaded is the pages that changed, and it needs its chain.
    const n = t.chain_length;
    return `${humanSize(t.uploaded_bytes)} uploaded: the pages that changed ` +
      `(${n} ${n === 1 ? "copy" : "copies"} since the full copy)`;
  }
  if (t.stored_size == null) return "—";
  const ratio = t.ratio == null ? "" : ` (${Math.round(t.ratio * 100)}% of the backup)`;
  return `${humanSize(t.stored_size)}${ratio}${t.kind === "full" ? ", a full copy" : ""}`;
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

/**
 * How far a backup is known to be good: `{ state: "verified"|"failed"|"made"|"none", text }`.
 * "made" only from the service's record of its `quick_check` as it wrote the file
 * (`checked_at_creation`), which no longer counts once the file changed: never from the name.
 */
export function verificationState(b) {
  if (b.verified_ok === true) return { state: "verified", text: "✓ Verified" };
  if (b.verified_ok === false) return { state: "failed", text: "✗ Failed verification" };
  if (b.checked_at_creation != null) return { state: "made", text: "✓ Checked when made" };
  return { state: "none", text: "Not verified" };
}

function verifiedCell(b) {
  const v = verificationState(b);
  const when = () => el("span", { className: "when muted" }, timeEl(b.verified_at, localTime(b.verified_at)));
  if (v.state === "verified") return el("span", {}, el("span", { className: "ok", text: v.text }), when());
  if (v.state === "failed") return el("span", {}, el("span", { className: "fail", text: v.text }), when());
  if (v.state === "made") {
    return el("span", { className: "made", title: `SQLite's quick_check passed as the service wrote this file ` +
                        `(${localTime(b.checked_at_creation)}), and the file is unchanged since; ` +
                        "Verify reads every page and the schema" }, el("span", { className: "ok", text: v.text }));
  }
  return el("span", { className: "muted", text: v.text });
}

function actionButton(text, label, handler, className = "secondary") {
  const button = el("button", { type: "button", className, "aria-label": label },
    el("span", { className: "spinner", "aria-hidden": "true" }), el("span", { className: "label", text }));
  button.addEventListener("click", () => handler(button));
  return button;
}

/** The "More" menu of a row: a button that opens a small list of further actions. */
let menus = 0;  // numbers the menus' ids (a file name may hold characters an id should not)

function rowMenu(name, items) {
  const id = `row-menu-${++menus}`;
  const list = el("div", { className: "menu-list", id, hidden: "" }, ...items);
  const toggle = el("button", { type: "button", className: "secondary menu-toggle", "aria-expanded": "false",
                                "aria-controls": id, "aria-label": `More actions for ${name}` },
    el("span", { "aria-hidden": "true", text: "More ▾" }));
  toggle.addEventListener("click", () => openMenu(toggle, list, toggle.getAttribute("aria-expanded") !== "true"));
  list.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      openMenu(toggle, list, false);
      toggle.focus();
    }
  });
  // An item's own handler runs first; then the menu closes.
  for (const item of items) item.addEventListener("click", () => openMenu(toggle, list, false));
  return el("div", { className: "row-menu" }, toggle, list);
}

function openMenu(toggle, list, open) {
  if (open) closeMenus();
  toggle.setAttribute("aria-expanded", String(open));
  list.hidden = !open;
  if (open) list.querySelector("button").focus();
}

/** Close every open row menu (a click elsewhere, Escape, a new render). */
export function closeMenus(except) {
  for (const toggle of document.querySelectorAll('.menu-toggle[aria-expanded="true"]')) {
    if (except && toggle.parentElement.contains(except)) continue;
    toggle.setAttribute("aria-expanded", "false");
    $(toggle.getAttribute("aria-controls")).hidden = true;
  }
}

export const PAGE_SIZE = 20;

/**
 * Fill the backups table with one page of `backups` (PAGE_SIZE rows from `page`, 0 first).
 * `files`: whether verify, download and restore exist on this service; `on`: the handlers
 * `{ verify(name, button), restore(name), changes(name), remove(name), page(n) }`. Returns the page shown.
 */
export function renderBackups(backups, files, on, page = 0) {
  const pages = Math.max(1, Math.ceil(backups.length / PAGE_SIZE));
  const current = Math.min(Math.max(0, page), pages - 1);
  const shown = backups.slice(current * PAGE_SIZE, (current + 1) * PAGE_SIZE);
  const body = $("backups-body");
  body.replaceChildren();
  $("backups-empty").hidden = backups.length > 0;
  $("backups-table").hidden = backups.length === 0;
  for (const b of shown) {
    const actions = el("div", { className: "row-actions" });
    const remove = actionButton("Delete", `Delete ${b.name}`, () => on.remove(b.name), "danger");
    if (files) {
      actions.append(
        el("a", { className: "button secondary", href: `/api/backup/download?name=${encodeURIComponent(b.name)}`,
                  download: b.name, "aria-label": `Download ${b.name}`, text: "Download" }),
        actionButton("Restore", `Restore ${b.name}`, () => on.restore(b.name)),
        rowMenu(b.name, [actionButton("What changed?", `What changed since ${b.name}?`, () => on.changes(b.name)),
                         actionButton("Verify", `Verify ${b.name}`, (btn) => on.verify(b.name, btn)), remove]),
      );
    } else {
      actions.append(remove);
    }
    const row = el("tr", { "data-name": b.name },
      el("th", { scope: "row", "data-label": "Name" }, el("span", { className: "filename", text: b.name })),
      el("td", { "data-label": "Size", title: `${b.size} bytes` }, el("span", { className: "nowrap", text: humanSize(b.size) })),
      el("td", { "data-label": "Created" }, el("div", {},
        el("span", { className: "local-time" }, timeEl(b.created_at, localTime(b.created_at))),
        el("span", { className: "utc-time muted" }, timeEl(b.created_at, utcTime(b.created_at))))),
    );
    if (files) row.append(el("td", { "data-label": "Verified" }, verifiedCell(b)));
    else row.append(el("td", { className: "needs-files" }));
    row.append(el("td", { className: "actions-cell" }, actions));
    body.append(row);
  }
  renderPager("backups", current * PAGE_SIZE, shown.length, backups.length, PAGE_SIZE, (offset) => on.page(offset / PAGE_SIZE));
  return current;
}

/**
 * A pager under a list: "21–40 of 57" and Newer / Older. `prefix`: the ids' start (`<prefix>-pager`,
 * `-range`, `-newer`, `-older`); `go(offset)` is called with the first item of the page asked for.
 */
export function renderPager(prefix, offset, count, total, size, go) {
  const pager = $(`${prefix}-pager`);
  pager.hidden = total <= size && offset === 0;
  $(`${prefix}-range`).textContent = count ? `${offset + 1}–${offset + count} of ${total}` : `none of ${total}`;
  const newer = $(`${prefix}-newer`), older = $(`${prefix}-older`);
  newer.disabled = offset === 0;
  older.disabled = offset + count >= total;
  newer.onclick = () => go(Math.max(0, offset - size));
  older.onclick = () => go(offset + size);
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

/** One page of audit events, with the client address each came from. */
export function renderAudit(events) {
  const body = $("audit-body");
  body.replaceChildren();
  for (const e of events) {
    body.append(el("tr", { "data-action": e.action },
      el("td", { "data-label": "When", title: utcTime(e.created_at) }, timeEl(e.created_at, localTime(e.created_at))),
      el("td", { "data-label": "Who", text: e.actor || "—" }),
      el("td", { "data-label": "What", text: actionText(e.action) }),
      el("td", { "data-label": "Details", className: "detail", text: detailText(e) }),
      el("td", { "data-label": "From" }, el("span", { className: "address", text: e.ip_address || "—" })),
    ));
  }
  if (!body.children.length) {
    body.append(el("tr", {}, el("td", { colspan: "5", className: "muted", text: "Nothing matches." })));
  }
}

// "What changed?": a backup compared with the live database table by table (GET /api/backup/diff),
// and one table restored from it behind a dry run, a typed confirmation and an undo.
// Table names and keys come from the data and are hostile: they are only ever set as text.
import { api, ApiError } from "./api.js";
import { $, el, setBusy } from "./dom.js";
import { bothTimes, elapsedText, humanSize } from "./format.js";

const KINDS = [["inserted", "Inserted since"], ["updated", "Updated since"], ["deleted", "Deleted since"]];
/** `name`: the backup shown; `table`/`dry`: the table being restored and its dry run's answer;
 * `loads`: numbers the diff loads (only the newest is drawn); `busy`: a restore or undo running;
 * `undos`: the restores made from this page not undone yet, `{token, table, name}`, newest last
 * (undone newest first, as each undo needs the rows as its restore left them); `returnTo`: the
 * backup whose row gets the focus back. */
const state = { app: null, name: null, table: null, dry: null, loads: 0, busy: false, undos: [], returnTo: null, reloading: null };

// ---- words -------------------------------------------------------------------------------

/** A row's key as text: a number as it is, a text key in quotes, a key of several columns in
 * brackets ("(1, \"a\")"). */
function keyText(key) {
  if (Array.isArray(key)) return `(${key.map(keyText).join(", ")})`;
  return typeof key === "number" ? String(key) : JSON.stringify(key);
}

/** "2, 3" or "1, 2, … and 30 more" for a change's `{count, sample}`. */
function keysText(change) {
  if (!change || !change.count) return "";
  const shown = (change.sample || []).map(keyText).join(", ");
  const more = change.count - (change.sample || []).length;
  return more > 0 ? `${shown}, … and ${more} more` : shown;
}

function rows(n) {
  return `${n} ${n === 1 ? "row" : "rows"}`;
}

function changed(t) {
  return !t.compared || t.schema.length > 0 || KINDS.some(([kind]) => t[kind].count > 0);
}

// ---- the dialog --------------------------------------------------------------------------

/** Open the view for backup `name` (`backup`: its list entry, for when it was taken) and load
 * the comparison. */
export function openChanges(name, backup) {
  state.name = name;
  state.returnTo = name;
  $("changes-name").textContent = name;
  $("changes-when").textContent = backup ? `, taken ${bothTimes(backup.created_at)}` : "";
  hideError();
  $("changes-result").hidden = true;
  const last = state.undos[state.undos.length - 1];
  if (last) showResult(`Your restore of table ${last.table} from ${last.name} can still be undone.`, false);
  showDiffPane();
  const dialog = $("changes-dialog");
  if (!dialog.open) dialog.showModal();
  $("changes-close").focus();
  loadDiff();
}

function showDiffPane() {
  state.table = null;
  state.dry = null;
  $("changes-restore").hidden = true;
  $("changes-diff").hidden = false;
}

function fail(err) {
  if (err instanceof ApiError && err.status === 401) {  // back to the login form
    $("changes-dialog").close();
    state.app.handleError(err);
    return;
  }
  const box = $("changes-error");
  box.textContent = err.message;
  box.hidden = false;
  box.focus({ preventScroll: true });
}

function hideError() {
  $("changes-error").hidden = true;
}

/** Show `text` at the top of the dialog, with an Undo button for the newest restore not undone;
 * `focus`: move focus to it (the result of what the user just did). */
function showResult(text, focus = true) {
  $("changes-result-text").textContent = text;
  const last = state.undos[state.undos.length - 1];
  const button = $("changes-undo");
  button.hidden = !last;
  if (last) {
    button.querySelector(".label").textContent = `Undo the restore of ${last.table}`;
    button.dataset.idle = button.querySelector(".label").textContent;
  }
  $("changes-result").hidden = false;
  if (focus) $("changes-result").focus({ preventScroll: true });
}

// ---- the comparison ----------------------------------------------------------------------

async function loadDiff() {
  const load = ++state.loads;
  const name = state.name;
  const started = Date.now();
  const tick = () => {
    if (load !== state.loads) return clearInterval(timer);
    $("changes-summary").textContent = `Comparing ${name} with the live database… ` +
      `${elapsedText((Date.now() - started) / 1000)} so far (the first comparison of a file verifies it too).`;
  };
  const timer = setInterval(tick, 1000);
  tick();
  $("changes-table").hidden = true;
  $("changes-same").textContent = "";
  try {
    const d = await api("GET", `/api/backup/diff?from=${encodeURIComponent(name)}&to=live`);
    if (load === state.loads) drawDiff(d);
  } catch (err) {
    if (load !== state.loads) return;
    $("changes-summary").textContent = "Not compared.";
    fail(err);
  } finally {
    clearInterval(timer);
  }
}

function drawDiff(d) {
  // The tables a restore can take first, then the service's own (each group by name).
  const shown = d.tables.filter(changed).sort((a, b) => Number(b.restorable) - Number(a.restorable));
  const same = d.tables.filter((t) => !changed(t)).map((t) => t.table);
  const total = d.totals.inserted + d.totals.updated + d.totals.deleted;
  $("changes-summary").textContent = shown.length === 0
    ? "Nothing changed: every table holds what the backup holds."
    : `${shown.length} ${shown.length === 1 ? "table differs" : "tables differ"}: ` +
      `${rows(d.totals.inserted)} inserted, ${rows(d.totals.updated)} updated and ` +
      `${rows(d.totals.deleted)} deleted since the backup (${total} in all; compared in ${d.duration_seconds} s).`;
  $("changes-body").replaceChildren(...shown.map(tableRow));
  $("changes-table").hidden = shown.length === 0;
  $("changes-same").textContent = same.length ? `Unchanged: ${same.join(", ")}.` : "";
}

function tableRow(t) {
  const head = el("th", { scope: "row", "data-label": "Table" },
    el("span", { className: "filename", text: t.table }),
    el("span", { className: "key-note muted", text: `by ${t.key.join(", ")}` }));
  if (t.schema.length) {
    head.append(el("ul", { className: "schema-list", "aria-label": `How ${t.table}'s schema differs` },
      ...t.schema.map((s) => el("li", { text: s }))));
  }
  const row = el("tr", { "data-table": t.table }, head);
  for (const [kind, label] of KINDS) {
    const change = t[kind];
    const cell = el("td", { "data-label": label, "data-kind": kind });
    if (!t.compared || !change) {
      cell.append(el("span", { className: "muted", text: "not compared" }));
    } else {
      cell.append(el("div", {},
        el("span", { className: change.count ? "count" : "count zero", text: String(change.count) }),
        el("span", { className: "keys", text: keysText(change) })));
    }
    row.append(cell);
  }
  const action = el("td", { className: "actions-cell" });
  if (t.restorable) {
    const button = el("button", { type: "button", className: "secondary", "aria-label": `Restore table ${t.table}…` },
      el("span", { className: "spinner", "aria-hidden": "true" }), el("span", { className: "label", text: "Restore this table…" }));
    button.addEventListener("click", () => dryRun(t.table, button));
    action.append(button);
  } else {
    action.append(el("span", { className: "refused", text: `Not restored here: ${t.refused || "it cannot be restored partially"}.` }));
  }
  row.append(action);
  return row;
}

// ---- one table's restore -----------------------------------------------------------------

async function dryRun(table, button) {
  const name = state.name;
  hideError();
  setBusy(button, true, "Checking…");
  try {
    const answer = await api("POST", "/api/backup/restore", { name, tables: [table], dry_run: true });
    if (name === state.name && $("changes-dialog").open) drawDryRun(table, answer);
  } catch (err) {
    fail(err);
  } finally {
    if (button.isConnected) setBusy(button, false);
  }
}

const DRY = {
  inserted: (n) => `put back ${rows(n)} deleted since the backup`,
  updated: (n) => `set back ${rows(n)} changed since the backup`,
  deleted: (n) => `delete ${rows(n)} added since the backup`,
};

/** Show the dry run's `answer` for `table`; `focus`: move focus to the typed confirmation (not
 * when an error just shown has it). */
function drawDryRun(table, answer, focus = true) {
  const entry = answer.tables.find((t) => t.table === table) || answer.tables[0];
  state.table = table;
  state.dry = answer;
  $("changes-restore-title").textContent = `Restore table ${table} from the backup`;
  const n = KINDS.reduce((sum, [kind]) => sum + entry[kind].count, 0);
  $("changes-dry-intro").textContent = n === 0
    ? `Nothing to restore: ${table} already holds what the backup holds.`
    : `Dry run, nothing written yet. Restoring ${table} would:`;
  $("changes-dry-list").replaceChildren(...KINDS.filter(([kind]) => entry[kind].count > 0).map(([kind]) =>
    el("li", { "data-kind": kind }, `${DRY[kind](entry[kind].count)}: `,
       el("span", { className: "keys-inline filename", text: keysText(entry[kind]) }))));
  const conflicts = entry.conflicts;
  $("changes-conflicts").hidden = !conflicts.count;
  $("changes-force").checked = false;
  if (conflicts.count) {
    $("changes-conflicts-text").textContent =
      `${conflicts.count === 1 ? "1 live row" : `${conflicts.count} live rows`} it would overwrite or delete ` +
      `${conflicts.count === 1 ? "was" : "were"} written after the backup was taken (${keysText(conflicts)}). ` +
      "Restoring puts the backup's version in their place and that later work is lost.";
    $("changes-force-label").textContent = `Overwrite my newer rows (${conflicts.count})`;
  }
  $("changes-check").textContent = (entry.conflict_check.startsWith("none")
    ? `No conflict check for ${table}: it has no updated_at or created_at column. `
    : "") + "Every other table stays as it is. A safety copy of the whole database (pre-restore-…) is " +
    "made first, and the restore can be undone from here.";
  $("changes-confirm-field").hidden = n === 0;
  $("changes-typed-label").textContent = `Type the table name, ${table}, to confirm`;
  $("changes-typed").value = "";
  $("changes-apply").hidden = n === 0;
  $("changes-apply").querySelector(".label").textContent = `Restore ${table}`;
  updateApply();
  $("changes-diff").hidden = true;
  $("changes-restore").hidden = false;
  if (focus) (n === 0 ? $("changes-back") : $("changes-typed")).focus();
}

function ready() {
  const typed = $("changes-typed").value;
  const conflicts = state.dry ? state.dry.conflicts : 0;
  return state.table !== null && (typed === state.table || typed.trim() === state.table) &&
    (!conflicts || $("changes-force").checked);
}

function updateApply() {
  if (!$("changes-apply").hasAttribute("aria-busy")) $("changes-apply").disabled = !ready();
}

async function apply(event) {
  event.preventDefault();
  if (!ready() || state.busy) return;
  const table = state.table, name = state.name;
  const body = { name, tables: [table] };
  if ($("changes-force").checked) body.force = true;
  const button = $("changes-apply");
  hideError();
  state.busy = true;
  setBusy(button, true, `Restoring ${table}…`);
  try {
    const r = await api("POST", "/api/backup/restore", body);
    const t = r.totals;
    const safety = r.safety_backup
      ? ` The database as it was is in ${r.safety_backup.name} (${humanSize(r.safety_backup.size)}).` : "";
    if (r.undo) state.undos.push({ token: r.undo, table, name });
    showDiffPane();
    showResult(`Restored table ${table} from ${name}: ${rows(t.inserted)} put back, ${rows(t.updated)} set back, ` +
               `${rows(t.deleted)} deleted.${safety}`);
    loadDiff();
    state.reloading = state.app.reload();
  } catch (err) {
    fail(err);
    // Refused because rows changed since the dry run (conflicts, or written meanwhile): run it
    // again, so what is shown, and the overwrite choice, are what the restore now faces.
    if (err instanceof ApiError && err.status === 409 && state.table === table) await redo(table, name);
  } finally {
    state.busy = false;
    setBusy(button, false);
    updateApply();
  }
}

async function redo(table, name) {
  try {
    const answer = await api("POST", "/api/backup/restore", { name, tables: [table], dry_run: true });
    if (name === state.name && state.table === table) drawDryRun(table, answer, false);
  } catch (err) {
    // The first error stays shown: it says why nothing was restored.
  }
}

async function undo() {
  const last = state.undos[state.undos.length - 1];
  if (!last || state.busy) return;
  const token = last.token;
  const button = $("changes-undo");
  hideError();
  state.busy = true;
  setBusy(button, true, "Undoing…");
  try {
    const r = await api("POST", "/api/backup/restore/undo", { token });
    const done = Object.entries(r.tables || {}).map(([table, c]) =>
      `${table}: ${rows(c.inserted)} put back, ${rows(c.updated)} set back, ${rows(c.deleted)} deleted`);
    state.undos.pop();
    setBusy(button, false);
    showDiffPane();
    showResult(`Undone: the tables are as they were before the restore (${done.join("; ") || "nothing to change"}).`);
    loadDiff();
    state.reloading = state.app.reload();
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {  // used or pruned: it can never be undone
      state.undos.pop();
      if (!state.undos.length) button.hidden = true;
    }
    fail(err);
  } finally {
    state.busy = false;
    setBusy(button, false);
  }
}

/** Back to the row the view was opened from (its More button; the list may have been redrawn). */
function returnFocus(name) {
  const toggle = [...document.querySelectorAll("#backups-body .menu-toggle")]
    .find((b) => b.getAttribute("aria-label") === `More actions for ${name}`);
  if (toggle) toggle.focus();
}

/** Wire the dialog once; `app` has `handleError(err)` (401 and the like) and `reload()` (the page). */
export function wireChanges(app) {
  state.app = app;
  const dialog = $("changes-dialog");
  $("changes-close").addEventListener("click", () => { if (!state.busy) dialog.close(); });
  dialog.addEventListener("cancel", (event) => { if (state.busy) event.preventDefault(); });
  dialog.addEventListener("close", () => {
    state.loads += 1;
    state.name = null;
    const name = state.returnTo;
    returnFocus(name);
    // A reload still running redraws the list after this: the focused button is then gone.
    Promise.resolve(state.reloading).then(() => {
      if (!dialog.open && (document.activeElement === document.body || !document.activeElement)) {
        returnFocus(name);
      }
    }, () => {});
  });
  $("changes-back").addEventListener("click", () => { hideError(); showDiffPane(); });
  $("changes-typed").addEventListener("input", updateApply);
  $("changes-force").addEventListener("change", updateApply);
  $("changes-restore").addEventListener("submit", apply);
  $("changes-undo").addEventListener("click", undo);
}

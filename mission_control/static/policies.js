// Retention rules (previewed with what is kept and why, then confirmed, before they are saved; pruned
// now on request) and the schedule picker.
import { api, ApiError } from "./api.js";
import { $, el, setBusy } from "./dom.js";
import { localTime, utcTime } from "./format.js";

const COUNT_KEY = "general.backup_retention_count";
const SCHEDULE_KEY = "general.auto_backup_schedule";
const SAFETY_KEY = "general.safety_copies_keep";
const HOURS = ["1", "2", "3", "4", "6", "8", "12"];
/** `retentionDirty`: the retention form was edited since it was filled (the refresh leaves it alone). */
const state = { ctx: null, values: {}, pending: null, scheduleDirty: false, retentionDirty: false, previewed: null,
                timer: 0, asked: 0 };

// ---- filling from the API ----------------------------------------------------------------

/**
 * Show stored settings (key → string) and the `auto_backup` task. A form being edited (typed in
 * since it was filled or saved) is left alone, as forms.js does; a preview of values the refill
 * changed is hidden (it no longer shows what the form says).
 */
export function fillPolicies(values, task) {
  state.values = values;
  let changed = false;
  for (const input of document.querySelectorAll("#retention-form [data-key]")) {
    const known = input.dataset.key in values;
    input.disabled = !known; // the retention plugin may be switched off: only the count is left
    if (known && !state.retentionDirty && input.value !== values[input.dataset.key]) {
      input.value = values[input.dataset.key];
      changed = true;
    }
  }
  if (changed) $("retention-preview").hidden = true;
  $("retention-more").hidden = !("retention.keep_daily" in values);
  if (task && task.description) $("auto-when").textContent = task.description;
  if (!state.scheduleDirty && values[SCHEDULE_KEY]) {
    fillSchedule(values[SCHEDULE_KEY]);
    previewSchedule();
  }
}

function fillSchedule(expression) {
  const daily = /^(\d{1,2}) (\d{1,2}) \* \* \*$/.exec(expression);
  const hours = /^0 (\*|\*\/(\d{1,2})) \* \* \*$/.exec(expression);
  let kind = "custom";
  if (daily && +daily[1] < 60 && +daily[2] < 24) {
    kind = "daily";
    $("daily-time").value = `${daily[2].padStart(2, "0")}:${daily[1].padStart(2, "0")}`;
  } else if (hours && HOURS.includes(hours[2] || "1")) {
    kind = "hours";
    $("every-hours").value = hours[2] || "1";
  }
  $(`kind-${kind}`).checked = true;
  $("custom-cron").value = expression;
}

// ---- the schedule picker -----------------------------------------------------------------

function scheduleExpression() {
  const kind = document.querySelector('input[name="schedule-kind"]:checked');
  if (!kind || kind.value === "custom") return $("custom-cron").value.trim();
  if (kind.value === "hours") {
    const n = $("every-hours").value;
    return n === "1" ? "0 * * * *" : `0 */${n} * * *`;
  }
  const [hour, minute] = ($("daily-time").value || "").split(":");
  return hour && minute ? `${+minute} ${+hour} * * *` : "";
}

function scheduleEdited(event) {
  state.scheduleDirty = true;
  const kinds = { "daily-time": "daily", "every-hours": "hours", "custom-cron": "custom" };
  if (event && kinds[event.target.id]) $(`kind-${kinds[event.target.id]}`).checked = true;
  clearTimeout(state.timer);
  state.timer = setTimeout(previewSchedule, 250);
}

/** Ask the service to check and describe the picked expression; Save is enabled only for a valid one. */
async function previewSchedule() {
  const expression = scheduleExpression();
  const asked = ++state.asked;
  const error = $("schedule-error");
  state.previewed = null;
  $("schedule-save").disabled = true;
  if (!expression) {
    showScheduleError("Enter a time or a cron expression.");
    return;
  }
  try {
    const preview = await api("GET", `/api/scheduler/preview?schedule=${encodeURIComponent(expression)}`);
    if (asked !== state.asked) return; // a newer choice is being checked
    state.previewed = preview;
    error.hidden = true;
    $("schedule-preview").hidden = false;
    $("schedule-description").textContent = preview.description;
    $("schedule-expression").textContent = preview.schedule;
    $("schedule-next").replaceChildren(...preview.next.map((ms) =>
      el("li", { text: `${utcTime(ms / 1000)} (${localTime(ms / 1000)} your time)` })));
    $("schedule-save").disabled = false;
  } catch (err) {
    if (asked !== state.asked) return;
    if (err instanceof ApiError && err.status === 400) showScheduleError(err.message);
    else state.ctx.handleError(err);
  }
}

function showScheduleError(text) {
  $("schedule-preview").hidden = true;
  const error = $("schedule-error");
  error.textContent = text;
  error.hidden = false;
}

async function saveSchedule(event) {
  event.preventDefault();
  const preview = state.previewed;
  if (!preview) return;
  const button = $("schedule-save");
  setBusy(button, true, "Saving…");
  try {
    await api("PUT", "/api/settings", { settings: { [SCHEDULE_KEY]: preview.schedule } });
    state.scheduleDirty = false;
    state.ctx.showStatus(`Schedule saved: ${preview.description}.`);
    await state.ctx.reload();
  } catch (err) {
    state.ctx.handleError(err);
  } finally {
    setBusy(button, false);
  }
}

// ---- retention: preview, confirm, save, prune now -------------------------------------------

function retentionChanges() {
  const changes = {};
  for (const input of document.querySelectorAll("#retention-form [data-key]")) {
    const key = input.dataset.key;
    if (input.disabled || !(key in state.values)) continue;
    const value = input.value.trim();
    if (value !== state.values[key]) changes[key] = value;
  }
  if (Object.keys(changes).length === 0) changes[COUNT_KEY] = $("retention").value.trim();
  return changes;
}

/** What the service would keep and delete with the form's values (nothing is saved). */
function previewChanges(changes) {
  return api("POST", "/api/backup/prune", { dry_run: true, settings: changes });
}

// Files pruning by the rules never touches, but that are not kept forever either.
const SAFETY_KINDS = [[/^uploaded-/, "uploads"], [/^pre-restore-/, "pre-restore safety copies"],
                      [/^offsite-mc-backup-/, "copies fetched back from off-site"]];

/** A kept file's reasons as the API gives them; for uploads and safety copies, what does prune them. */
function reasonsText(kept) {
  const reasons = [...(kept.reasons || [])];
  const kind = SAFETY_KINDS.find(([pattern]) => pattern.test(kept.name));
  if (kind) {
    const n = state.values[SAFETY_KEY] || "5";
    return `not touched by these rules; only the newest ${n} ${kind[1]} are kept (general.safety_copies_keep)`;
  }
  return reasons.join(", ") || "kept";
}

function keptItems(preview) {
  return preview.keep.map((k) => el("li", {}, el("span", { className: "filename", text: k.name }),
                                    el("span", { className: "reason muted", text: ` — ${reasonsText(k)}` })));
}

function rotatingKept(preview) {
  return preview.keep.filter((k) => !/never pruned|not counted by the retention rules/.test((k.reasons || []).join(" "))).length;
}

/** The Preview button: what the form's values keep (with the reasons) and delete, under the form. */
async function showPreview() {
  const box = $("retention-preview");
  try {
    const preview = await previewChanges(retentionChanges());
    const n = preview.delete.length;
    box.replaceChildren(
      el("h3", { text: "Preview (not saved)" }),
      el("p", { text: n ? `${n} ${n === 1 ? "backup" : "backups"} would be deleted at the next backup:`
                        : "Nothing would be deleted." }),
      ...(n ? [el("ul", { className: "prune-list" }, ...preview.delete.map((d) => el("li", { text: d.name })))] : []),
      el("p", { text: `Kept (${preview.keep.length}):` }),
      el("ul", { className: "keep-list" }, ...keptItems(preview)));
    box.hidden = false;
  } catch (err) {
    state.ctx.handleError(err);
  }
}

async function saveRetention(event) {
  event.preventDefault();
  const changes = retentionChanges();
  try {
    const preview = await previewChanges(changes);
    if (preview.delete.length === 0) {
      await applyRetention(changes, preview);
      return;
    }
    state.pending = { mode: "save", changes, preview };
    openPruneDialog(preview, "save");
  } catch (err) {
    state.ctx.handleError(err);
  }
}

/** Prune now: preview the saved rules, confirm, then delete at once. */
async function pruneNow() {
  const button = $("prune-now");
  setBusy(button, true, "Checking…");
  try {
    const preview = await api("POST", "/api/backup/prune", { dry_run: true });
    if (preview.delete.length === 0) {
      state.ctx.showStatus(`Nothing to prune: the saved rules keep all ${rotatingKept(preview)} backups.`);
      return;
    }
    state.pending = { mode: "prune", preview };
    openPruneDialog(preview, "prune");
  } catch (err) {
    state.ctx.handleError(err);
  } finally {
    setBusy(button, false);
  }
}

function openPruneDialog(preview, mode) {
  const n = preview.delete.length;
  const when = mode === "prune" ? "now" : "at the next backup";
  $("prune-title").textContent = mode === "prune" ? "Prune now?" : "Save these retention rules?";
  $("prune-confirm").textContent = mode === "prune" ? `Delete ${n} ${n === 1 ? "backup" : "backups"}` : "Save rules";
  $("prune-text").textContent = `${n === 1 ? "This backup" : `These ${n} backups`} will be deleted ${when}` +
    (preview.policy === "plugin" ? " (a plugin's retention policy decides, not these rules):" : ":");
  $("prune-list").replaceChildren(...preview.delete.map((d) => el("li", { text: d.name })));
  const rotating = rotatingKept(preview);
  $("prune-kept").textContent = `${rotating} ${rotating === 1 ? "backup is" : "backups are"} kept by the rules.`;
  $("prune-keep-list").replaceChildren(...keptItems(preview));
  const dialog = $("prune-dialog");
  dialog.returnValue = "";
  dialog.showModal();
  $("prune-cancel").focus();
}

async function pruneClosed() {
  const pending = state.pending;
  state.pending = null;
  if (!pending) return;
  if ($("prune-dialog").returnValue !== "confirm") {
    state.ctx.showStatus(pending.mode === "prune" ? "Nothing pruned." : "Retention rules not changed.");
    if (pending.mode === "save") state.retentionDirty = false; // back to the stored rules
    fillPolicies(state.values);
    return;
  }
  try {
    if (pending.mode === "prune") await applyPrune();
    else await applyRetention(pending.changes, pending.preview);
  } catch (err) {
    state.ctx.handleError(err);
  }
}

async function applyPrune() {
  const outcome = await api("POST", "/api/backup/prune", { dry_run: false });
  const n = outcome.delete.length;
  state.ctx.showStatus(`Pruned ${n} ${n === 1 ? "backup" : "backups"}; ${rotatingKept(outcome)} kept by the rules.`);
  await state.ctx.reload();
}

async function applyRetention(changes, preview) {
  await api("PUT", "/api/settings", { settings: changes });
  state.retentionDirty = false; // refilled with what is stored by the reload
  const value = (key) => (key in changes ? changes[key] : state.values[key]);
  const others = [...document.querySelectorAll("#retention-form [data-key]")]
    .filter((i) => i.dataset.key !== COUNT_KEY && !i.disabled)
    .some((i) => !["", "0"].includes(String(value(i.dataset.key) || "").trim()));
  const n = preview.delete.length;
  let text = `Keeping the newest ${value(COUNT_KEY)} backups${others ? " and every backup the other rules keep" : ""}.`;
  if (n) text += ` ${n} ${n === 1 ? "backup" : "backups"} will be deleted at the next backup.`;
  $("retention-preview").hidden = true;
  state.ctx.showStatus(text);
  await state.ctx.reload();
}

// ---- start -------------------------------------------------------------------------------

/** Wire the forms; `ctx` is `{ showStatus, handleError, reload }` from the page. */
export function wirePolicies(ctx) {
  state.ctx = ctx;
  $("retention-form").addEventListener("submit", saveRetention);
  $("retention-form").addEventListener("input", () => { state.retentionDirty = true; });
  $("retention-preview-button").addEventListener("click", showPreview);
  $("prune-now").addEventListener("click", pruneNow);
  $("prune-dialog").addEventListener("close", pruneClosed);
  $("schedule-form").addEventListener("submit", saveSchedule);
  for (const id of ["kind-daily", "kind-hours", "kind-custom", "daily-time", "every-hours"]) {
    $(id).addEventListener("change", scheduleEdited);
  }
  $("custom-cron").addEventListener("input", scheduleEdited);
  $("daily-time").addEventListener("input", scheduleEdited);
}

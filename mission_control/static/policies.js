// Retention rules (previewed, then confirmed, before they are saved) and the schedule picker.
import { api, ApiError } from "./api.js";
import { $, el, setBusy } from "./dom.js";
import { localTime, utcTime } from "./format.js";

const COUNT_KEY = "general.backup_retention_count";
const SCHEDULE_KEY = "general.auto_backup_schedule";
const HOURS = ["1", "2", "3", "4", "6", "8", "12"];
const state = { ctx: null, values: {}, pending: null, scheduleDirty: false, previewed: null, timer: 0, asked: 0 };

// ---- filling from the API ----------------------------------------------------------------

/** Show stored settings (key → string) and the `auto_backup` task; fields being edited are left alone. */
export function fillPolicies(values, task) {
  state.values = values;
  for (const input of document.querySelectorAll("#retention-form [data-key]")) {
    const known = input.dataset.key in values;
    input.disabled = !known; // the retention plugin may be switched off: only the count is left
    if (known && document.activeElement !== input) input.value = values[input.dataset.key];
  }
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

// ---- retention: preview, confirm, save -----------------------------------------------------

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

async function saveRetention(event) {
  event.preventDefault();
  const changes = retentionChanges();
  try {
    const preview = await api("POST", "/api/backup/prune", { dry_run: true, settings: changes });
    if (preview.delete.length === 0) {
      await applyRetention(changes, preview);
      return;
    }
    state.pending = { changes, preview };
    openPruneDialog(preview);
  } catch (err) {
    state.ctx.handleError(err);
  }
}

function openPruneDialog(preview) {
  const n = preview.delete.length;
  const rotating = preview.keep.filter((k) => !/never pruned/.test((k.reasons || []).join(" "))).length;
  $("prune-text").textContent = `${n === 1 ? "This backup" : `These ${n} backups`} will be deleted at the next backup` +
    (preview.policy === "plugin" ? " (a plugin's retention policy decides, not these rules):" : ":");
  $("prune-list").replaceChildren(...preview.delete.map((d) => el("li", { text: d.name })));
  $("prune-kept").textContent = `${rotating} ${rotating === 1 ? "backup is" : "backups are"} kept by the rules.`;
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
    state.ctx.showStatus("Retention rules not changed.");
    fillPolicies(state.values);
    return;
  }
  try {
    await applyRetention(pending.changes, pending.preview);
  } catch (err) {
    state.ctx.handleError(err);
  }
}

async function applyRetention(changes, preview) {
  await api("PUT", "/api/settings", { settings: changes });
  const value = (key) => (key in changes ? changes[key] : state.values[key]);
  const others = [...document.querySelectorAll("#retention-form [data-key]")]
    .filter((i) => i.dataset.key !== COUNT_KEY && !i.disabled)
    .some((i) => !["", "0"].includes(String(value(i.dataset.key) || "").trim()));
  const n = preview.delete.length;
  let text = `Keeping the newest ${value(COUNT_KEY)} backups${others ? " and every backup the other rules keep" : ""}.`;
  if (n) text += ` ${n} ${n === 1 ? "backup" : "backups"} will be deleted at the next backup.`;
  state.ctx.showStatus(text);
  await state.ctx.reload();
}

// ---- start -------------------------------------------------------------------------------

/** Wire the forms; `ctx` is `{ showStatus, handleError, reload }` from the page. */
export function wirePolicies(ctx) {
  state.ctx = ctx;
  $("retention-form").addEventListener("submit", saveRetention);
  $("prune-dialog").addEventListener("close", pruneClosed);
  $("schedule-form").addEventListener("submit", saveSchedule);
  for (const id of ["kind-daily", "kind-hours", "kind-custom", "daily-time", "every-hours"]) {
    $(id).addEventListener("change", scheduleEdited);
  }
  $("custom-cron").addEventListener("input", scheduleEdited);
  $("daily-time").addEventListener("input", scheduleEdited);
}

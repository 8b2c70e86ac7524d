// Continuous protection on the page: Litestream's state, the restorable window drawn as a bar, and
// the "restore to a moment" form with its own confirm step (any spelling of the moment, or RESTORE).
import { api } from "./api.js";
import { $, el, setBusy } from "./dom.js";
import { bothTimes, humanSize, utcTime } from "./format.js";

/** Quick picks, in seconds before now. */
const AGO = [60, 300, 900];
/** Litestream keeps each second for this long (level 0), then compacts to coarser steps. */
const FINE_MS = 5 * 60 * 1000;
const STEPS = "Litestream keeps every second of the last 5 minutes; further back it keeps " +
  "steps of 30 s, then 5 min, then 1 hour (its compaction levels), so an older moment is " +
  "restored to the last step at or before it (the green part of the bar is the last 5 minutes). " +
  "The moment actually restored to is shown afterwards.";
const state = { app: null, pitr: null, moment: null };

// ---- times -------------------------------------------------------------------------------

const pad = (n, width = 2) => String(n).padStart(width, "0");

/** Unix ms as a `datetime-local` value with seconds, in the browser's zone. */
function localValue(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** "UTC+01:00" for the browser's zone at `ms`. */
function offsetText(ms) {
  const minutes = -new Date(ms).getTimezoneOffset();
  const sign = minutes < 0 ? "-" : "+";
  const a = Math.abs(minutes);
  return `UTC${sign}${pad(Math.floor(a / 60))}:${pad(a % 60)}`;
}

function zoneText(ms) {
  const name = Intl.DateTimeFormat().resolvedOptions().timeZone;
  return name && name !== "UTC" ? `${name}, ${offsetText(ms)}` : offsetText(ms);
}

const SPELLING = new RegExp("^(\\d{4})-(\\d{2})-(\\d{2})[T ](\\d{2}):(\\d{2})(?::(\\d{2})(?:[.,](\\d{1,9}))?)?" +
  "\\s*(Z|UTC|GMT|[+-]\\d{2}(?::?\\d{2})?)?$", "i");

/**
 * Unix ms of a written moment, or NaN: ISO 8601 with `Z` or an offset (`…:32Z`, `…:32.000Z`,
 * `…:32+00:00`), or without a zone (`2026-11-27T15:52:32`, `2026-11-27 15:52:32`) read as the
 * browser's local time, as the field shows it.
 */
export function parseMoment(text) {
  const m = SPELLING.exec(String(text).trim());
  if (!m) return NaN;
  const [y, mo, d, h, mi] = m.slice(1, 6).map(Number);
  const s = Number(m[6] || 0);
  const ms = Math.round(Number(`0.${m[7] || "0"}`) * 1000);
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 59) return NaN;
  const zone = m[8] ? m[8].toUpperCase() : null;
  if (zone === null) {
    const local = new Date(y, mo - 1, d, h, mi, s, ms);
    return local.getDate() === d ? local.getTime() : NaN;
  }
  let offset = 0;
  if (!["Z", "UTC", "GMT"].includes(zone)) {
    const z = /^([+-])(\d{2}):?(\d{2})?$/.exec(zone);
    offset = (z[1] === "-" ? -1 : 1) * (Number(z[2]) * 60 + Number(z[3] || 0));
  }
  const utc = Date.UTC(y, mo - 1, d, h, mi, s, ms);
  return new Date(utc).getUTCDate() === d ? utc - offset * 60000 : NaN;
}

/** "1 min 30 s", "2 h 05 min", "3 d 4 h": how long a window is. */
function spanText(ms) {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${pad(s % 60)} s` : ""}`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${pad(Math.floor(s / 60) % 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor(s / 3600) % 24} h`;
}

// ---- drawing -----------------------------------------------------------------------------

function build() {
  const box = $("pitr-restore");
  const quick = AGO.map((s) => el("button", { type: "button", className: "secondary", "data-ago": s,
                                              text: `${s / 60} min ago` }));
  const form = el("form", { id: "pitr-form", novalidate: true, "aria-labelledby": "pitr-form-title" },
    el("h3", { id: "pitr-form-title", text: "Restore to a moment" }),
    el("div", { className: "pitr-bar-wrap" },
      el("div", { id: "pitr-bar", className: "pitr-bar", role: "img" },
         el("span", { id: "pitr-bar-fine", className: "pitr-fine" }),
         el("span", { id: "pitr-bar-mark", className: "pitr-mark", hidden: true })),
      el("div", { className: "pitr-bar-ends" },
         el("span", { id: "pitr-bar-start" }), el("span", { id: "pitr-bar-end" }))),
    el("div", { className: "field" },
      el("label", { for: "pitr-moment", text: "Moment (your time, to the second)" }),
      el("div", { className: "pitr-moment-row" },
        el("input", { id: "pitr-moment", type: "datetime-local", step: "1", required: true,
                      "aria-describedby": "pitr-zone pitr-steps" }),
        el("span", { id: "pitr-zone", className: "pitr-zone" })),
      el("p", { id: "pitr-utc", className: "muted", "aria-live": "polite" })),
    el("div", { className: "actions pitr-quick", role: "group", "aria-label": "Quick picks" }, ...quick),
    el("p", { id: "pitr-steps", className: "muted", text: STEPS }),
    el("div", { id: "pitr-error", className: "error-box", role: "alert", tabindex: "-1", hidden: true }),
    el("p", { id: "pitr-result", className: "notice", role: "status", tabindex: "-1", hidden: true }),
    el("button", { type: "submit", id: "pitr-submit", className: "danger", text: "Restore to this moment…" }));
  box.append(form);
  document.body.append(dialog());
  form.addEventListener("submit", (event) => { event.preventDefault(); openConfirm(); });
  $("pitr-moment").addEventListener("input", momentChanged);
  for (const button of quick) button.addEventListener("click", () => pick(Number(button.dataset.ago)));
}

function dialog() {
  const node = el("dialog", { id: "pitr-dialog", "aria-labelledby": "pitr-confirm-title",
                              "aria-describedby": "pitr-confirm-warning" },
    el("form", { method: "dialog", id: "pitr-confirm-form" },
      el("h2", { id: "pitr-confirm-title", text: "Restore to this moment?" }),
      el("div", { id: "pitr-confirm-warning", className: "warning-box" },
        el("p", {}, "The database goes back to how it was at ", el("strong", { id: "pitr-confirm-when" }),
           ": agents, tasks, activities, settings, users, passwords and sessions. Everything changed " +
           "since then is lost, except the audit trail. A safety backup (pre-restore-…) is made first."),
        el("p", { id: "pitr-confirm-step", className: "muted" })),
      el("div", { className: "field" },
        el("label", { for: "pitr-typed", text: "Type the moment (any spelling of it, e.g. the UTC time below) or RESTORE to confirm" }),
        el("input", { id: "pitr-typed", autocomplete: "off", spellcheck: "false", autocapitalize: "none",
                      "aria-describedby": "pitr-typed-hint" }),
        el("p", { id: "pitr-typed-hint", className: "muted" })),
      el("div", { className: "field check-field" },
        el("input", { type: "checkbox", id: "pitr-settings" }),
        el("label", { for: "pitr-settings", text: "Also restore that moment's daily-backup, retention, " +
                      "off-site and alert settings" })),
      el("div", { className: "dialog-actions" },
        el("button", { type: "submit", value: "cancel", className: "secondary", id: "pitr-cancel",
                       formnovalidate: true, text: "Cancel" }),
        el("button", { type: "submit", value: "confirm", className: "danger", id: "pitr-confirm",
                       disabled: true, text: "Restore" }))));
  const typed = node.querySelector("#pitr-typed");
  typed.addEventListener("input", () => { $("pitr-confirm").disabled = !confirmed(); });
  typed.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return; // Enter would submit with the first button (Cancel)
    event.preventDefault();
    if (confirmed()) node.close("confirm");
  });
  node.addEventListener("close", confirmClosed);
  return node;
}

/** Fill the card from `GET /api/backup/pitr`; hidden while protection is off. */
export function renderPitr(pitr) {
  state.pitr = pitr;
  const card = $("pitr");
  card.hidden = !pitr || !pitr.enabled;
  if (card.hidden) return;
  let text;
  if (!pitr.installed) text = "On, but Litestream is not installed (pip install 'mission-control-backup[pitr]').";
  else if (pitr.seal_error) text = `Stopped: the replica is sealed and ${pitr.seal_error}.`;
  else if (pitr.running && pitr.sealed) {
    text = `Running: every change is sealed (age) and streamed to ${pitr.replica}; ` +
      `${humanSize(pitr.staging_bytes || 0)} staged locally.`;
  } else if (pitr.running) text = `Running: every change is streamed to ${pitr.replica}.`;
  else text = "On, but Litestream is not running.";
  if (pitr.last_error) text += ` Last error: ${pitr.last_error}`;
  $("pitr-state").textContent = text;
  const open = pitr.earliest !== null && pitr.latest !== null;
  $("pitr-window").textContent = open
    ? `${bothTimes(pitr.earliest / 1000)} to ${bothTimes(pitr.latest / 1000)}`
    : "nothing restorable yet";
  $("pitr-lag").textContent = pitr.lag_seconds === null ? "—" : `${pitr.lag_seconds} s`;
  if (!$("pitr-form")) build();
  for (const button of $("pitr-form").querySelectorAll("button")) button.disabled = !open;
  drawBar();
  momentChanged();
}

function drawBar() {
  const p = state.pitr;
  const bar = $("pitr-bar");
  const open = p && p.earliest !== null && p.latest !== null;
  bar.hidden = !open;
  $("pitr-bar-start").textContent = open ? `from ${bothTimes(p.earliest / 1000)}` : "";
  $("pitr-bar-end").textContent = open ? `to ${bothTimes(p.latest / 1000)}` : "";
  const field = $("pitr-moment");
  field.min = open ? localValue(p.earliest) : "";
  field.max = open ? localValue(p.latest) : "";
  if (!open) return;
  const span = Math.max(1, p.latest - p.earliest);
  const fine = Math.min(span, FINE_MS);
  $("pitr-bar-fine").style.width = `${(100 * fine) / span}%`;
  bar.setAttribute("aria-label", `Restorable window: ${spanText(span)}, from ${bothTimes(p.earliest / 1000)} ` +
    `to ${bothTimes(p.latest / 1000)}; the last ${spanText(fine)} to the second.`);
  const mark = $("pitr-bar-mark");
  const ms = state.moment;
  mark.hidden = ms === null || ms < p.earliest || ms > p.latest;
  if (!mark.hidden) mark.style.left = `${(100 * (ms - p.earliest)) / span}%`;
}

// ---- choosing the moment -----------------------------------------------------------------

/** The moment in the field as unix ms (whole seconds), or null while it is empty or incomplete. */
function fieldMoment() {
  const value = $("pitr-moment").value;
  if (!value) return null;
  const ms = parseMoment(value);
  return Number.isNaN(ms) ? null : ms;
}

function momentChanged() {
  state.moment = fieldMoment();
  const ms = state.moment;
  $("pitr-zone").textContent = zoneText(ms ?? Date.now());
  $("pitr-utc").textContent = ms === null ? "Not chosen yet: pick a time or use a quick pick."
    : `That is ${utcTime(ms / 1000)} (${new Date(ms).toISOString().replace(".000Z", "Z")}).`;
  $("pitr-error").hidden = true;
  drawBar();
}

function pick(secondsAgo) {
  const p = state.pitr;
  const ms = Math.floor((Date.now() - secondsAgo * 1000) / 1000) * 1000;
  $("pitr-result").hidden = true;
  $("pitr-moment").value = localValue(ms);
  momentChanged();
  if (p && p.earliest !== null && ms < p.earliest) {
    fail(`${secondsAgo / 60} min ago is before the restorable window, which starts at ${bothTimes(p.earliest / 1000)}.`);
  } else if (p && p.latest !== null && ms > p.latest) {
    fail(`${secondsAgo / 60} min ago is after the newest moment kept so far (${bothTimes(p.latest / 1000)}): ` +
      "the replica is behind; pick an earlier moment or wait a little.");
  }
}

function fail(text) {
  const box = $("pitr-error");
  box.textContent = text;
  box.hidden = false;
  box.focus();
}

/** Why the chosen moment cannot be restored to, or "" when it can. */
function problem() {
  const p = state.pitr, ms = state.moment;
  if (ms === null) return "Choose the moment first: a date and a time to the second, or a quick pick.";
  if (!p || p.earliest === null) return "Nothing is restorable yet.";
  if (ms < p.earliest || ms > p.latest) {
    return `${bothTimes(ms / 1000)} is outside the restorable window: ${bothTimes(p.earliest / 1000)} to ` +
      `${bothTimes(p.latest / 1000)}.`;
  }
  return "";
}

function openConfirm() {
  $("pitr-result").hidden = true;
  const why = problem();
  if (why) {
    fail(why);
    return;
  }
  const ms = state.moment;
  const iso = new Date(ms).toISOString().replace(".000Z", "Z");
  $("pitr-confirm-when").textContent = `${bothTimes(ms / 1000)}, ${zoneText(ms)}`;
  $("pitr-confirm-step").textContent = state.pitr.latest - ms <= FINE_MS
    ? "Within the last 5 minutes: restored to the second."
    : "Older than 5 minutes: restored to the last compaction step (30 s, 5 min or 1 h) at or before it.";
  $("pitr-typed-hint").textContent = `For example ${iso}, ${localValue(ms).replace("T", " ")} (your time) or RESTORE.`;
  $("pitr-typed").value = "";
  $("pitr-settings").checked = false;
  $("pitr-confirm").disabled = true;
  const node = $("pitr-dialog");
  node.returnValue = "";
  node.showModal();
  $("pitr-typed").focus();
}

/** The typed text names the chosen moment (any spelling, to the millisecond) or is RESTORE. */
function confirmed() {
  const text = $("pitr-typed").value.trim();
  return text === "RESTORE" || (state.moment !== null && parseMoment(text) === state.moment);
}

async function confirmClosed() {
  const node = $("pitr-dialog");
  const ok = node.returnValue === "confirm" && confirmed();
  const ms = state.moment;
  if (!ok || ms === null) {
    $("pitr-moment").focus();
    return;
  }
  const keepSettings = !$("pitr-settings").checked;
  const button = $("pitr-submit");
  const result = $("pitr-result");
  result.textContent = `Restoring to ${bothTimes(ms / 1000)}… The service keeps running; this can take a moment.`;
  result.hidden = false;
  setBusy(button, true, "Restoring…");
  try {
    const r = await api("POST", "/api/backup/restore", { timestamp: new Date(ms).toISOString(), keep_settings: keepSettings });
    const text = restoredText(r, ms, keepSettings);
    if (r.session && r.session.logged_in === false) {
      state.app.showLogin(`${text} ${r.session.message || "Please log in again."}`);
      return;
    }
    setBusy(button, false);
    $("pitr-moment").value = "";
    momentChanged();
    result.textContent = text;
    result.focus();
    await state.app.reload();
  } catch (err) {
    result.hidden = true;
    if (err.status === 401) state.app.handleError(err);
    else fail(`Not restored. ${err.message}`);
  } finally {
    if (button.isConnected) setBusy(button, false);
  }
}

/** What the restore answer says was done, in words: the moment restored to first. */
function restoredText(r, askedMs, keepSettings) {
  const restored = r.restored || {};
  const toMs = Date.parse(restored.restored_to || restored.timestamp || "") || askedMs;
  const skipped = restored.skipped || [];
  // A file first stored long after the moment is not trusted for it (sealed_stream.LATE).
  const late = skipped.filter((s) => String(s.reason).startsWith("first stored ")).length;
  const unread = skipped.length - late;
  const held = toMs === askedMs ? "" : ` You asked for ${bothTimes(askedMs / 1000)}; ` + (late
    ? `the data is from an earlier moment: ${late} later file(s) of the stream were uploaded too long after ` +
      "the moment to be trusted for it (named in the audit log; `mission-control recover --at … --as-of …` " +
      "can read them)."
    : "the data is from the last change the stream kept at or before it.");
  const gone = unread
    ? ` ${unread} file(s) of the stream could not be read and were gone around (named in the audit log).` : "";
  const safety = r.safety_backup ? ` The data it replaced is in ${r.safety_backup.name}.` : "";
  const kept = !keepSettings ? " Its daily-backup, retention, off-site and alert settings were restored too."
    : (r.kept_settings && r.kept_settings.length
      ? ` Kept the current protection settings: ${r.kept_settings.join(", ")}.` : "");
  return `Restored the database to ${bothTimes(toMs / 1000)} (${new Date(toMs).toISOString()}).${held}${gone}${safety}${kept}`;
}

/** Wire the card once; `app` has `showLogin(notice)`, `handleError(err)` and `reload()`. */
export function wirePitr(app) {
  state.app = app;
}

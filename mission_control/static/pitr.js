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
/** `moment`: the instant chosen (unix ms), kept as picked: the field shows it in local time but is
 * read back only when the user types in it (a repeated local hour names two instants).
 * `choices`: the instants a typed local time in a repeated hour may mean, while one is chosen;
 * `typedProblem`: why the text typed is no moment (null: it is one, or nothing is typed). */
const state = { app: null, pitr: null, moment: null, choices: [], typedProblem: null };

// ---- times -------------------------------------------------------------------------------

const pad = (n) => String(n).padStart(2, "0");

/** Unix ms as a `datetime-local` value with seconds, in the browser's zone. */
function localValue(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** `ms` in the browser's local time as one may type it to confirm: with its offset when that local
 * time happens twice (the hour repeated when the clocks go back). */
function localSpelling(ms) {
  const local = localValue(ms).replace("T", " ");
  return parseMoment(local) === ms ? `${local} (your time)` : `${local}${offsetText(ms).slice(3)}`;
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
 * The instants (unix ms, earliest first) at which the browser's clock shows this local time: one
 * as a rule, two in the hour repeated when the clocks go back, none in the hour skipped when they
 * go forward (`new Date(y, mo, d, h, …)` would silently take one of them).
 */
function localInstants(y, mo, d, h, mi, s, ms) {
  const wall = Date.UTC(y, mo - 1, d, h, mi, s, ms);
  if (new Date(wall).getUTCDate() !== d) return [];  // 31 February and alike
  const offsets = new Set([-24, -12, 0, 12, 24].map((k) => new Date(wall + k * 3600000).getTimezoneOffset()));
  const found = [];
  for (const offset of offsets) {
    const at = wall + offset * 60000;
    if (new Date(at).getTimezoneOffset() === offset && !found.includes(at)) found.push(at);
  }
  return found.sort((a, b) => a - b);
}

/**
 * A written moment read: `{ ms }`, or `{ problem }` in words, or `{ problem, choices }` (unix ms)
 * for a local time that happens twice. ISO 8601 with `Z` or an offset (`…:32Z`, `…:32.000Z`,
 * `…:32+00:00`), or without a zone (`2026-11-27T15:52:32`, `2026-11-27 15:52:32`) read as the
 * browser's local time, as the field shows it.
 */
function readMoment(text) {
  const m = SPELLING.exec(String(text).trim());
  if (!m) return { problem: "Not a date and time." };
  const [y, mo, d, h, mi] = m.slice(1, 6).map(Number);
  const s = Number(m[6] || 0);
  const ms = Math.round(Number(`0.${m[7] || "0"}`) * 1000);
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 59) return { problem: "Not a date and time." };
  const zone = m[8] ? m[8].toUpperCase() : null;
  if (zone === null) {
    const found = localInstants(y, mo, d, h, mi, s, ms);
    const written = `${m[1]}-${m[2]}-${m[3]} ${m[4]}:${m[5]}:${pad(s)}`;
    const where = Intl.DateTimeFormat().resolvedOptions().timeZone || "your time zone";
    if (found.length === 1) return { ms: found[0] };
    if (found.length === 0) {
      return new Date(Date.UTC(y, mo - 1, d)).getUTCDate() !== d ? { problem: "Not a date and time." }
        : { problem: `${written} does not exist in ${where}: the clocks went forward past it. ` +
            "Choose another time, or type the moment in UTC or with its offset." };
    }
    return { problem: `${written} happens twice in ${where}: the clocks went back. Choose which one ` +
      "below (each is given with its offset and in UTC), or type the moment in UTC or with its offset.",
             choices: found };
  }
  let offset = 0;
  if (!["Z", "UTC", "GMT"].includes(zone)) {
    const z = /^([+-])(\d{2}):?(\d{2})?$/.exec(zone);
    offset = (z[1] === "-" ? -1 : 1) * (Number(z[2]) * 60 + Number(z[3] || 0));
  }
  const utc = Date.UTC(y, mo - 1, d, h, mi, s, ms);
  return new Date(utc).getUTCDate() === d ? { ms: utc - offset * 60000 } : { problem: "Not a date and time." };
}

/** Unix ms of a written moment, or NaN (also for a local time that happens twice, or never). */
function parseMoment(text) {
  const read = readMoment(text);
  return read.ms === undefined ? NaN : read.ms;
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
      el("p", { id: "pitr-utc", className: "muted", "aria-live": "polite" }),
      el("label", { for: "pitr-moment-text", text: "…or type it in UTC or with its offset" }),
      el("input", { id: "pitr-moment-text", className: "wide", autocomplete: "off", spellcheck: "false",
                    autocapitalize: "none", placeholder: "2026-10-25T00:30:00Z or 2026-10-25 02:30:00+01:00" }),
      el("div", { id: "pitr-choices", className: "actions", role: "group", "aria-label": "Which one", hidden: true })),
    el("div", { className: "actions pitr-quick", role: "group", "aria-label": "Quick picks" }, ...quick),
    el("p", { id: "pitr-steps", className: "muted", text: STEPS }),
    el("div", { id: "pitr-error", className: "error-box", role: "alert", tabindex: "-1", hidden: true }),
    el("p", { id: "pitr-result", className: "notice", role: "status", tabindex: "-1", hidden: true }),
    el("button", { type: "submit", id: "pitr-submit", className: "danger", text: "Restore to this moment…" }));
  box.append(form);
  document.body.append(dialog());
  form.addEventListener("submit", (event) => { event.preventDefault(); openConfirm(); });
  $("pitr-moment").addEventListener("input", () => typed($("pitr-moment").value, "pitr-moment-text"));
  $("pitr-moment-text").addEventListener("input", () => typed($("pitr-moment-text").value, "pitr-moment"));
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
  for (const button of $("pitr-form").querySelectorAll("button")) {
    if (!button.hasAttribute("aria-busy")) button.disabled = !open; // a restore running keeps its button
  }
  showMoment(); // the moment chosen and any error shown stay: only what the user does changes them
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

/** The service's time in unix ms (the page measures the browser's clock against it). */
function now() {
  return state.app && state.app.now ? state.app.now() : Date.now();
}

/** The user typed `value` in one of the two fields (the only time they are read); the `other` one
 * shows the moment read, in its own way (local time in the picker, blank in the text field). */
function typed(value, other) {
  const read = value.trim() ? readMoment(value) : { problem: null };
  state.moment = read.ms === undefined ? null : read.ms;
  $(other).value = other === "pitr-moment" && state.moment !== null ? localValue(state.moment) : "";
  state.choices = read.choices || [];
  state.typedProblem = read.problem || null;
  $("pitr-error").hidden = true;
  $("pitr-result").hidden = true;
  showMoment();
}

/** Say the chosen moment in UTC (or why the typed one is not one), and mark it on the bar. */
function showMoment() {
  const ms = state.moment;
  $("pitr-zone").textContent = zoneText(ms ?? now());
  let text;
  if (ms !== null) text = `That is ${utcTime(ms / 1000)} (${new Date(ms).toISOString().replace(".000Z", "Z")}).`;
  else text = state.typedProblem || "Not chosen yet: pick a time or use a quick pick.";
  $("pitr-utc").textContent = text;
  const box = $("pitr-choices");
  if (box.dataset.for === state.choices.join()) return drawBar(); // a refresh: keep the buttons (and focus)
  box.dataset.for = state.choices.join();
  box.replaceChildren(...state.choices.map((at) => {
    const button = el("button", { type: "button", className: "secondary",
                                  text: `${localValue(at).replace("T", " ")} ${offsetText(at)} (${new Date(at).toISOString().replace(".000Z", "Z")})` });
    button.addEventListener("click", () => choose(at));
    return button;
  }));
  box.hidden = state.choices.length === 0;
  drawBar();
}

/** Take `ms` as the moment, shown in the field in local time but kept as this instant. */
function choose(ms) {
  state.moment = ms;
  state.choices = [];
  state.typedProblem = null;
  $("pitr-moment").value = localValue(ms);
  $("pitr-moment-text").value = "";
  $("pitr-error").hidden = true;
  $("pitr-result").hidden = true;
  showMoment();
}

function pick(secondsAgo) {
  const p = state.pitr;
  const ms = Math.floor((now() - secondsAgo * 1000) / 1000) * 1000;
  choose(ms);
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
  if (ms === null && state.typedProblem) return state.typedProblem;
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
  $("pitr-typed-hint").textContent = `For example ${iso}, ${localSpelling(ms)} or RESTORE.`;
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
    const text = restoredText(r, ms, keepSettings, state.pitr);
    if (r.session && r.session.logged_in === false) {
      state.app.showLogin(`${text} ${r.session.message || "Please log in again."}`);
      return;
    }
    setBusy(button, false);
    $("pitr-moment").value = "";
    $("pitr-moment-text").value = "";
    state.moment = null;
    state.choices = [];
    state.typedProblem = null;
    showMoment();
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

/**
 * What the restore answer says was done, in words: the moment restored to first. Without
 * `restored_to` (a plain Litestream stream does not say), a moment older than its last 5 minutes
 * (as the window stood: `pitr`) was restored to a compaction step at or before it.
 */
function restoredText(r, askedMs, keepSettings, pitr) {
  const restored = r.restored || {};
  const heldMs = Date.parse(restored.restored_to || "");
  const askedText = `${bothTimes(askedMs / 1000)} (${new Date(askedMs).toISOString()})`;
  const skipped = restored.skipped || [];
  // A file first stored long after the moment is not trusted for it (sealed_stream.LATE).
  const late = skipped.filter((s) => String(s.reason).startsWith("first stored ")).length;
  const unread = skipped.length - late;
  let first, held = "";
  if (!Number.isNaN(heldMs)) {
    first = `Restored the database to ${bothTimes(heldMs / 1000)} (${new Date(heldMs).toISOString()}).`;
    if (heldMs !== askedMs) {
      held = ` You asked for ${bothTimes(askedMs / 1000)}; ` + (late
        ? `the data is from an earlier moment: ${late} later file(s) of the stream were uploaded too long ` +
          "after the moment to be trusted for it (named in the audit log; `mission-control recover --at … " +
          "--as-of …` can read them)."
        : "the data is from the last change the stream kept at or before it.");
    }
  } else if (pitr && pitr.latest !== null && pitr.latest - askedMs > FINE_MS) {
    first = `Restored the database to a moment at or before ${askedText}: Litestream keeps only steps of ` +
      "30 s, 5 min or 1 hour that far back, and restored the last step at or before it.";
  } else {
    first = `Restored the database to ${askedText}.`;
  }
  const gone = unread
    ? ` ${unread} file(s) of the stream could not be read and were gone around (named in the audit log).` : "";
  const safety = r.safety_backup ? ` The data it replaced is in ${r.safety_backup.name}.` : "";
  const kept = !keepSettings ? " Its daily-backup, retention, off-site and alert settings were restored too."
    : (r.kept_settings && r.kept_settings.length
      ? ` Kept the current protection settings: ${r.kept_settings.join(", ")}.` : "");
  return `${first}${held}${gone}${safety}${kept}`;
}

/** Wire the card once; `app` has `showLogin(notice)`, `handleError(err)`, `reload()` and `now()` (the
 * service's time in unix ms, corrected for the browser clock's error: the quick picks count from it). */
export function wirePitr(app) {
  state.app = app;
}

// The backups page: login, its views (tabs), the backup list and its actions, automatic backups,
// activity; results and errors as toasts fixed to the viewport.
import { api, ApiError, uploadFile } from "./api.js";
import { $, setBusy } from "./dom.js";
import { bothTimes, elapsedText, humanSize, localTime } from "./format.js";
import { closeMenus, renderBackups, renderHealth, renderTask, verificationState } from "./render.js";
import { fillPolicies, wirePolicies } from "./policies.js";
import { renderPitr, wirePitr } from "./pitr.js";
import { loadForms } from "./forms.js";
import { loadAudit, wireAudit } from "./activity.js";
import { openChanges, wireChanges } from "./changes.js";
import { showTab, wireTabs } from "./tabs.js";

const VIEWS = ["login-view", "forbidden-view", "app-view"];
/** How often the page reloads what it shows while it is visible. */
const REFRESH_MS = 30000;
const state = { user: null, files: false, backups: new Map(), list: [], page: 0, pending: null,
               loading: null, loadedAt: 0, skewMs: 0, taskTicker: null };

// ---- views and messages ----------------------------------------------------------------

function show(view) {
  $("loading").hidden = true;
  for (const id of VIEWS) $(id).hidden = id !== view;
}

/** Show `text` in the toast `kind` ("status" or "error"), fixed to the viewport, and hide the other.
 * `focus`: move focus to it (results of what the user did; not a background reload's). */
function toast(kind, text, focus) {
  const other = kind === "status" ? "error" : "status";
  $(`${other}-toast`).hidden = true;
  $(`${other}-message`).hidden = true;
  const box = $(`${kind}-message`);
  box.textContent = text;
  box.hidden = false;
  $(`${kind}-toast`).hidden = false;
  if (focus) box.focus({ preventScroll: true });
}

function showStatus(text, focus = true) {
  toast("status", text, focus);
}

function showError(text, focus = true) {
  toast("error", text, focus);
}

function hideToast(kind) {
  const box = $(`${kind}-message`);
  const hadFocus = box.contains(document.activeElement);
  $(`${kind}-toast`).hidden = true;
  box.hidden = true;
  if (hadFocus) $("main").focus({ preventScroll: true });
}

function clearMessages() {
  hideToast("status");
  hideToast("error");
}

/** Every failed call ends here: 401 goes back to the login form, anything else is shown in words.
 * `focus`: false for a background reload, whose error must not take the keyboard away. */
function handleError(err, focus = true) {
  if (err instanceof ApiError && err.status === 401) {
    if (state.user !== null) showLogin("Your session has ended. Please log in again.");
    return;
  }
  showError(err.message, focus);
}

function showLogin(notice) {
  state.user = null;
  $("whoami").hidden = true;
  const box = $("login-notice");
  box.textContent = notice || "";
  box.hidden = !notice;
  $("login-error").hidden = true;
  show("login-view");
  $("login-username").focus();
}

// ---- login and logout --------------------------------------------------------------------

async function login(event) {
  event.preventDefault();
  const username = $("login-username").value.trim();
  const password = $("login-password").value;
  const error = $("login-error");
  error.hidden = true;
  if (!username || !password) {
    error.textContent = "Enter your username and password.";
    error.hidden = false;
    return;
  }
  const button = $("login-submit");
  setBusy(button, true, "Logging in…");
  try {
    const data = await api("POST", "/api/auth/login", { username, password });
    $("login-form").reset();
    await enter(data.user);
  } catch (err) {
    error.textContent = err.message;
    error.hidden = false;
    $("login-password").select();
  } finally {
    setBusy(button, false);
  }
}

async function logout() {
  try {
    await api("POST", "/api/auth/logout");
    showLogin("You have logged out.");
  } catch (err) {
    handleError(err);
  }
}

async function enter(user) {
  state.user = user;
  $("whoami-text").textContent = `Signed in as ${user.username} (${user.role})`;
  $("whoami").hidden = false;
  if (user.role !== "admin") {
    $("forbidden-text").textContent =
      `Backups are managed by admins. Your account, ${user.username}, has the ${user.role} role.`;
    show("forbidden-view");
    return;
  }
  clearMessages();
  show("app-view");
  showTab(location.hash.slice(1), false);
  // Focus for screen readers and keyboards, without scrolling the header away on a phone.
  $("main").focus({ preventScroll: true });
  window.scrollTo(0, 0);
  await loadAll();
}

// ---- loading -----------------------------------------------------------------------------

async function loadEverything() {
  const main = $("main");
  main.setAttribute("aria-busy", "true");
  try {
    await loadHealth(); // first: it tells whether verify, download and restore exist
    const settings = api("GET", "/api/settings"); // read once: the schedule and the forms share it
    await Promise.all([loadBackups(), loadSchedule(settings), guarded(loadAudit), loadPitr(),
                       loadForms({ handleError, reload: loadAll }, settings)]);
  } finally {
    state.loadedAt = Date.now();
    main.removeAttribute("aria-busy");
  }
}

/** Reload everything the page shows, after any reload already running (so it sees the latest). */
function loadAll() {
  const current = (state.loading || Promise.resolve()).then(loadEverything);
  state.loading = current;
  current.finally(() => { if (state.loading === current) state.loading = null; });
  return current;
}

/** The service's time in unix ms, from the browser's and the last status's `server_time_ms` (the
 * schedule's running time and the point-in-time quick picks count from it). */
function serverNow() {
  return Date.now() + state.skewMs;
}

/** The page goes stale otherwise: reload it while it is visible to an admin. */
function refreshIfVisible() {
  if (document.visibilityState !== "visible" || $("app-view").hidden || !state.user || state.loading) return;
  loadAll();
}

/** Call `show(text)` now and every second with the time taken so far; returns the stopper. */
function ticking(show) {
  const started = Date.now();
  const tick = () => show(elapsedText((Date.now() - started) / 1000));
  tick();
  const timer = setInterval(tick, 1000);
  return () => clearInterval(timer);
}

/** Run a load; its error is shown without taking focus (the user may be typing elsewhere). */
async function guarded(work) {
  try {
    await work();
  } catch (err) {
    handleError(err, false);
  }
}

/** How far the service's clock is ahead of ours (ms), from `server_time_ms` read as it answered a
 * request sent at `sent` and answered at `received` (our clock). That reading was taken somewhere
 * in between, so the true difference lies within the round trip above the measured one: a
 * difference the round trip cannot tell from none is none (the page's picks then land on the
 * browser's whole seconds); any other is taken to the millisecond (`checked_at` is whole seconds,
 * read before the status was worked out, and is no such measure). */
function clockSkew(serverMs, sent, received) {
  const skew = serverMs - received;
  return skew <= 0 && skew >= sent - received ? 0 : skew;
}

function loadHealth() {
  return guarded(async () => {
    let status = null;
    const sent = Date.now();
    try {
      status = await api("GET", "/api/backup/status");
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) throw err;
    }
    const received = Date.now();
    state.files = status !== null;
    document.body.classList.toggle("no-files", !state.files);
    $("health").hidden = status === null;
    if (status) {
      state.skewMs = clockSkew(status.server_time_ms, sent, received);
      renderHealth(status);
    }
  });
}

function loadPitr() {
  return guarded(async () => {
    let pitr = null;
    try {
      pitr = await api("GET", "/api/backup/pitr");
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) throw err;
    }
    renderPitr(pitr);
    $("pitr-off").hidden = Boolean(pitr && pitr.enabled);
  });
}

function loadBackups() {
  return guarded(async () => {
    const data = await api("GET", "/api/backup");
    state.list = data.backups || [];
    state.backups = new Map(state.list.map((b) => [b.name, b]));
    drawBackups();
    $("backups-dir").textContent = data.dir ? `Stored in ${data.dir}` : "";
  });
}

function drawBackups() {
  state.page = renderBackups(state.list, state.files, { verify, restore: openRestore, remove: openDelete,
                                                        changes: (name) => openChanges(name, state.backups.get(name)),
                                                        page: goToPage }, state.page);
}

function goToPage(page) {
  state.page = page;
  drawBackups();
  $("backups-title").scrollIntoView({ block: "nearest" });
}

function loadSchedule(listed = api("GET", "/api/settings")) {
  return guarded(async () => {
    const [settings, scheduler] = await Promise.all([listed, api("GET", "/api/scheduler")]);
    const values = Object.fromEntries((settings.settings || []).map((s) => [s.key, s.value]));
    $("auto-backup").checked = values["general.auto_backup"] === "true";
    if (values["general.site_name"]) {
      $("site-name").textContent = values["general.site_name"];
      document.title = `${values["general.site_name"]} — Backups`;
    }
    const task = (scheduler.tasks || []).find((t) => t.id === "auto_backup");
    renderTask(task, serverNow());
    clearInterval(state.taskTicker);  // a running task's time goes on between reloads
    if (task && task.running) state.taskTicker = setInterval(() => renderTask(task, serverNow()), 1000);
    fillPolicies(values, task);
    if (values["general.safety_copies_keep"]) $("safety-keep").textContent = values["general.safety_copies_keep"];
  });
}

// ---- actions -----------------------------------------------------------------------------

async function backupNow() {
  const button = $("backup-now");
  setBusy(button, true, "Backing up…");
  const stop = ticking((t) => {
    button.querySelector(".label").textContent = `Backing up… ${t}`;
    showStatus(`Making a backup… ${t} so far.`);
  });
  try {
    const data = await api("POST", "/api/backup").finally(stop);
    showStatus(`Backup ${data.backup.name} created (${humanSize(data.backup.size)}).`);
  } catch (err) {
    handleError(err);
  } finally {
    setBusy(button, false);
  }
  await loadAll();
}

async function runTask() {
  const button = $("run-task");
  setBusy(button, true, "Running…");
  const stop = ticking((t) => { button.querySelector(".label").textContent = `Running… ${t}`; });
  try {
    const data = await api("POST", "/api/scheduler", { task_id: "auto_backup" }).finally(stop);
    showStatus(`Scheduled backup task: ${data.message}.`);
  } catch (err) {
    handleError(err);
  } finally {
    setBusy(button, false);
  }
  await loadAll();
}

async function verify(name, button) {
  setBusy(button, true, "Verifying…");
  try {
    const r = await api("POST", "/api/backup/verify", { name });
    if (r.ok) showStatus(`${name} passed verification (integrity ok, SHA-256 ${String(r.sha256).slice(0, 12)}…).`);
    else showError(`${name} failed verification: ${(r.problems || []).join("; ") || "unknown problem"}.`);
    await loadAll();
  } catch (err) {
    handleError(err);
  } finally {
    if (button.isConnected) setBusy(button, false);
  }
}

function openDelete(name) {
  state.pending = name;
  $("delete-name").textContent = name;
  const dialog = $("delete-dialog");
  dialog.returnValue = "";
  dialog.showModal();
  $("delete-cancel").focus();
}

async function deleteClosed() {
  const name = state.pending;
  state.pending = null;
  if ($("delete-dialog").returnValue !== "confirm" || !name) return;
  try {
    await api("DELETE", "/api/backup", { name });
    showStatus(`Deleted ${name}.`);
  } catch (err) {
    handleError(err);
  }
  await loadAll();
}

function openRestore(name) {
  const backup = state.backups.get(name);
  state.pending = name;
  $("restore-name").textContent = name;
  $("restore-when").textContent = backup ? `taken ${bothTimes(backup.created_at)}` : "taken at an unknown time";
  $("restore-typed").value = "";
  $("restore-settings").checked = false;
  $("restore-confirm").disabled = true;
  const failed = backup && verificationState(backup).state === "failed";
  const warning = $("restore-verify-warning");
  warning.hidden = !failed;
  if (failed) {
    warning.textContent = `This file failed verification (${localTime(backup.verified_at)}). The restore checks ` +
      "it again and refuses a damaged file; choose another backup unless you know why it failed.";
  }
  const dialog = $("restore-dialog");
  dialog.returnValue = "";
  dialog.showModal();
  $("restore-typed").focus();
}

function restoreTyped() {
  return $("restore-typed").value.trim() === state.pending;
}

async function restoreClosed() {
  const name = state.pending;
  const confirmed = $("restore-dialog").returnValue === "confirm" && restoreTyped();
  const keepSettings = !$("restore-settings").checked;
  const body = { name, keep_settings: keepSettings };
  state.pending = null;
  if (!confirmed || !name) return;
  showStatus(`Restoring ${name}… The service keeps running; this can take a moment.`);
  try {
    const r = await api("POST", "/api/backup/restore", body);
    const safety = r.safety_backup ? ` The data it replaced is in ${r.safety_backup.name}.` : "";
    const text = `Restored ${name}.${safety}${keptText(r.kept_settings, keepSettings)}`;
    if (r.session && r.session.logged_in === false) {
      showLogin(`${text} ${r.session.message || "Please log in again."}`);
      return;
    }
    showStatus(text);
    await loadAll();
  } catch (err) {
    handleError(err);
  }
}

/** What a restore did with the protection settings, as a sentence (empty when nothing differed). */
function keptText(kept, keepSettings) {
  if (!keepSettings) return " Its daily-backup, retention, off-site and alert settings were restored too.";
  if (!kept || !kept.length) return "";
  return ` Kept the current protection settings instead of the backup's: ${kept.join(", ")}.`;
}

async function upload(event) {
  event.preventDefault();
  const input = $("upload-file");
  const file = input.files && input.files[0];
  if (!file) {
    showError("Choose a backup file (.db) to upload first.");
    input.focus();
    return;
  }
  const button = $("upload-submit");
  setBusy(button, true, "Uploading…");
  showStatus(`Uploading ${file.name} (${humanSize(file.size)})…`);
  try {
    const data = await uploadFile(file);
    showStatus(`Uploaded ${file.name} as ${data.backup.name}; it passed verification.`);
    $("upload-form").reset();
    await loadAll();
  } catch (err) {
    handleError(err);
  } finally {
    setBusy(button, false);
  }
}

async function toggleAuto() {
  const box = $("auto-backup");
  const on = box.checked;
  box.disabled = true;
  try {
    await api("PUT", "/api/settings", { settings: { "general.auto_backup": on ? "true" : "false" } });
    showStatus(on ? "Automatic backup is on." : "Automatic backup is off.");
    await loadAll();
  } catch (err) {
    box.checked = !on;
    handleError(err);
  } finally {
    box.disabled = false;
  }
}

// ---- start -------------------------------------------------------------------------------

function wire() {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("backup-now").addEventListener("click", backupNow);
  $("run-task").addEventListener("click", runTask);
  $("refresh").addEventListener("click", () => { clearMessages(); loadAll(); });
  for (const button of document.querySelectorAll(".toast-close")) {
    button.addEventListener("click", () => hideToast(button.dataset.closes.replace("-toast", "")));
  }
  document.addEventListener("keydown", (event) => {
    const open = ["status", "error"].find((k) => $(`${k}-message`).contains(document.activeElement));
    if (event.key === "Escape" && open) hideToast(open);
  });
  document.addEventListener("click", (event) => closeMenus(event.target));
  wireTabs();
  wireAudit({ handleError });
  $("auto-backup").addEventListener("change", toggleAuto);
  wirePolicies({ showStatus, handleError, reload: loadAll });
  $("upload-form").addEventListener("submit", upload);
  $("delete-dialog").addEventListener("close", deleteClosed);
  $("restore-dialog").addEventListener("close", restoreClosed);
  wirePitr({ showLogin, handleError, reload: loadAll, now: serverNow });
  wireChanges({ handleError, reload: loadAll });
  $("restore-typed").addEventListener("input", () => { $("restore-confirm").disabled = !restoreTyped(); });
  $("restore-typed").addEventListener("keydown", (event) => {
    // Enter would submit with the first button (Cancel); confirm only when the name matches.
    if (event.key === "Enter") {
      event.preventDefault();
      if (restoreTyped()) $("restore-dialog").close("confirm");
    }
  });
}

async function start() {
  wire();
  setInterval(refreshIfVisible, REFRESH_MS);
  document.addEventListener("visibilitychange", () => {
    if (Date.now() - state.loadedAt >= REFRESH_MS) refreshIfVisible();
  });
  try {
    const data = await api("GET", "/api/auth/me");
    await enter(data.user);
  } catch (err) {
    showLogin(err instanceof ApiError && err.status === 401 ? "" : err.message);
  }
}

start();

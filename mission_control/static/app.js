// The backups page: login, the backup table and its actions, automatic backups, recent activity.
import { api, ApiError, uploadFile } from "./api.js";
import { actionText, bothTimes, detailText, humanSize, localTime, utcTime } from "./format.js";

const $ = (id) => document.getElementById(id);
const VIEWS = ["login-view", "forbidden-view", "app-view"];
const state = { user: null, files: false, backups: new Map(), pending: null };

// ---- small DOM helpers -------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else if (key === "className") node.className = value;
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function timeEl(seconds, text) {
  const iso = seconds == null ? "" : new Date(seconds * 1000).toISOString();
  return el("time", { datetime: iso, text });
}

function setBusy(button, busy, busyLabel) {
  const label = button.querySelector(".label") || button;
  if (busy) {
    button.dataset.idle = label.textContent;
    label.textContent = busyLabel;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    button.classList.add("busy");
  } else {
    if (button.dataset.idle) label.textContent = button.dataset.idle;
    button.disabled = false;
    button.removeAttribute("aria-busy");
    button.classList.remove("busy");
  }
}

// ---- views and messages ----------------------------------------------------------------

function show(view) {
  $("loading").hidden = true;
  for (const id of VIEWS) $(id).hidden = id !== view;
}

function showStatus(text) {
  $("error-message").hidden = true;
  const box = $("status-message");
  box.textContent = text;
  box.hidden = false;
}

function showError(text) {
  $("status-message").hidden = true;
  const box = $("error-message");
  box.textContent = text;
  box.hidden = false;
}

function clearMessages() {
  $("status-message").hidden = true;
  $("error-message").hidden = true;
}

/** Every failed call ends here: 401 goes back to the login form, anything else is shown in words. */
function handleError(err) {
  if (err instanceof ApiError && err.status === 401) {
    if (state.user !== null) showLogin("Your session has ended. Please log in again.");
    return;
  }
  showError(err.message);
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
  $("main").focus();
  await loadAll();
}

// ---- loading -----------------------------------------------------------------------------

async function loadAll() {
  const main = $("main");
  main.setAttribute("aria-busy", "true");
  try {
    await loadHealth(); // first: it tells whether verify, download and restore exist
    await Promise.all([loadBackups(), loadSchedule(), loadAudit()]);
  } finally {
    main.removeAttribute("aria-busy");
  }
}

async function guarded(work) {
  try {
    await work();
  } catch (err) {
    handleError(err);
  }
}

function loadHealth() {
  return guarded(async () => {
    let status = null;
    try {
      status = await api("GET", "/api/backup/status");
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) throw err;
    }
    state.files = status !== null;
    document.body.classList.toggle("no-files", !state.files);
    $("health").hidden = status === null;
    if (status) renderHealth(status);
  });
}

function renderHealth(status) {
  const badge = $("health-verdict");
  const words = { pass: "Healthy", warn: "Needs attention", fail: "Failing" };
  badge.textContent = words[status.verdict] || status.verdict;
  badge.className = `badge ${status.verdict}`;
  const parts = (status.reasons || []).map((r) => r.charAt(0).toUpperCase() + r.slice(1) + ".");
  if (status.last_success) {
    parts.push(`Last good backup: ${status.last_success.name}, ${localTime(status.last_success.at)}.`);
  }
  if (status.backups) {
    const n = status.backups.count;
    parts.push(`${n} ${n === 1 ? "file" : "files"}, ${humanSize(status.backups.total_size)} in all.`);
  }
  $("health-reasons").textContent = parts.join(" ");
}

function loadBackups() {
  return guarded(async () => {
    const data = await api("GET", "/api/backup");
    renderBackups(data.backups || []);
    $("backups-dir").textContent = data.dir ? `Stored in ${data.dir}` : "";
  });
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

function renderBackups(backups) {
  const body = $("backups-body");
  body.replaceChildren();
  state.backups = new Map(backups.map((b) => [b.name, b]));
  $("backups-empty").hidden = backups.length > 0;
  $("backups-table").hidden = backups.length === 0;
  for (const b of backups) {
    const actions = el("div", { className: "row-actions" });
    if (state.files) {
      actions.append(
        el("a", { className: "button secondary", href: `/api/backup/download?name=${encodeURIComponent(b.name)}`,
                  download: b.name, "aria-label": `Download ${b.name}`, text: "Download" }),
        actionButton("Verify", `Verify ${b.name}`, (btn) => verify(b.name, btn)),
        actionButton("Restore", `Restore ${b.name}`, () => openRestore(b.name)),
      );
    }
    actions.append(actionButton("Delete", `Delete ${b.name}`, () => openDelete(b.name), "danger"));
    const row = el("tr", { "data-name": b.name },
      el("th", { scope: "row", "data-label": "Name" }, el("span", { className: "filename", text: b.name })),
      el("td", { "data-label": "Size", title: `${b.size} bytes` }, humanSize(b.size)),
      el("td", { "data-label": "Created" }, el("div", {},
        el("span", { className: "local-time" }, timeEl(b.created_at, localTime(b.created_at))),
        el("span", { className: "utc-time muted" }, timeEl(b.created_at, utcTime(b.created_at))))),
    );
    if (state.files) row.append(el("td", { "data-label": "Verified" }, verifiedCell(b)));
    else row.append(el("td", { className: "needs-files" }));
    row.append(el("td", { className: "actions-cell" }, actions));
    body.append(row);
  }
}

function loadSchedule() {
  return guarded(async () => {
    const [settings, scheduler] = await Promise.all([api("GET", "/api/settings"), api("GET", "/api/scheduler")]);
    const values = Object.fromEntries((settings.settings || []).map((s) => [s.key, s.value]));
    $("auto-backup").checked = values["general.auto_backup"] === "true";
    const retention = $("retention");
    if (document.activeElement !== retention) retention.value = values["general.backup_retention_count"] || "";
    if (values["general.site_name"]) {
      $("site-name").textContent = values["general.site_name"];
      document.title = `${values["general.site_name"]} — Backups`;
    }
    const task = (scheduler.tasks || []).find((t) => t.id === "auto_backup");
    renderTask(task);
  });
}

function renderTask(task) {
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
    last.textContent = "Running now…";
  } else if (!result) {
    last.textContent = "No run yet";
  } else {
    last.className = result.ok ? "ok" : "fail";
    const at = result.timestamp ? ` — ${bothTimes(result.timestamp / 1000)}` : "";
    last.textContent = `${result.ok ? "✓ Succeeded" : "✗ Failed"}: ${result.message}${at}`;
  }
}

function loadAudit() {
  return guarded(async () => {
    const data = await api("GET", "/api/audit?limit=20");
    const body = $("audit-body");
    body.replaceChildren();
    for (const e of data.events || []) {
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
  });
}

// ---- actions -----------------------------------------------------------------------------

async function backupNow() {
  const button = $("backup-now");
  setBusy(button, true, "Backing up…");
  showStatus("Making a backup…");
  try {
    const data = await api("POST", "/api/backup");
    showStatus(`Backup ${data.backup.name} created (${humanSize(data.backup.size)}).`);
    await Promise.all([loadBackups(), loadAudit(), loadHealth()]);
  } catch (err) {
    handleError(err);
  } finally {
    setBusy(button, false);
  }
}

async function verify(name, button) {
  setBusy(button, true, "Verifying…");
  try {
    const r = await api("POST", "/api/backup/verify", { name });
    if (r.ok) showStatus(`${name} passed verification (integrity ok, SHA-256 ${String(r.sha256).slice(0, 12)}…).`);
    else showError(`${name} failed verification: ${(r.problems || []).join("; ") || "unknown problem"}.`);
    await Promise.all([loadBackups(), loadAudit()]);
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
  await Promise.all([loadBackups(), loadAudit(), loadHealth()]);
}

function openRestore(name) {
  const backup = state.backups.get(name);
  state.pending = name;
  $("restore-name").textContent = name;
  $("restore-when").textContent = backup ? bothTimes(backup.created_at) : "at an unknown time";
  $("restore-typed").value = "";
  $("restore-confirm").disabled = true;
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
  state.pending = null;
  if (!confirmed || !name) return;
  showStatus(`Restoring ${name}… The service keeps running; this can take a moment.`);
  try {
    const r = await api("POST", "/api/backup/restore", { name });
    const safety = r.safety_backup ? ` The data it replaced is in ${r.safety_backup.name}.` : "";
    const text = `Restored ${name}.${safety}`;
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
    await Promise.all([loadBackups(), loadAudit(), loadHealth()]);
  } catch (err) {
    handleError(err);
  } finally {
    setBusy(button, false);
  }
}

async function saveRetention(event) {
  event.preventDefault();
  const value = $("retention").value.trim();
  try {
    await api("PUT", "/api/settings", { settings: { "general.backup_retention_count": value } });
    showStatus(`Keeping the newest ${value} backups.`);
    await Promise.all([loadSchedule(), loadAudit()]);
  } catch (err) {
    handleError(err);
  }
}

async function toggleAuto() {
  const box = $("auto-backup");
  const on = box.checked;
  box.disabled = true;
  try {
    await api("PUT", "/api/settings", { settings: { "general.auto_backup": on ? "true" : "false" } });
    showStatus(on ? "Daily automatic backup is on." : "Daily automatic backup is off.");
    await Promise.all([loadSchedule(), loadAudit(), loadHealth()]);
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
  $("refresh").addEventListener("click", () => { clearMessages(); loadAll(); });
  $("auto-backup").addEventListener("change", toggleAuto);
  $("retention-form").addEventListener("submit", saveRetention);
  $("upload-form").addEventListener("submit", upload);
  $("delete-dialog").addEventListener("close", deleteClosed);
  $("restore-dialog").addEventListener("close", restoreClosed);
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
  try {
    const data = await api("GET", "/api/auth/me");
    await enter(data.user);
  } catch (err) {
    showLogin(err instanceof ApiError && err.status === 401 ? "" : err.message);
  }
}

start();

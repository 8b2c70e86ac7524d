// Forms for the settings that were API-only: off-site targets, point in time, alerts. Each form
// saves the fields changed in it with one `PUT /api/settings` (all or nothing: the API validates,
// and its 400 is shown beside the fields it names); secrets are write-only ("set" / "not set").
import { api } from "./api.js";
import { $, el, setBusy } from "./dom.js";

/**
 * One form per group of settings, drawn into the container named. A field is
 * `[key, label, kind, extra]`: kind "text" (default), "number", "bool", "choice" (extra.choices),
 * "area" (several lines) or "secret" (write-only; extra.area for several lines).
 * A field whose key the service does not declare (its plugin is off) is left out; so is a form
 * without any. The forms of one container are folded away under one line saying what each is
 * set to now (`summary`).
 */
const FORMS = [
  { id: "offsite-dir", container: "offsite-config", title: "Folder copy (a mounted share)",
    summary: (v) => (v["offsite.dir.path"] ? `on: ${v["offsite.dir.path"]}` : "off"),
    fields: [
      ["offsite.dir.path", "Folder", "text", { placeholder: "/mnt/nas/mission-control", wide: true }],
      ["offsite.dir.retention_count", "Copies to keep", "number"],
      ["offsite.dir.compress", "Compression", "choice", { choices: ["none", "zstd"] }],
      ["offsite.dir.zstd_level", "zstd level", "number"],
      ["offsite.dir.age_recipients", "Encrypt to (age recipients)", "area"],
    ] },
  { id: "offsite-s3", container: "offsite-config", title: "S3 bucket copy",
    summary: (v) => (v["offsite.s3.bucket"] ? `on: ${v["offsite.s3.bucket"]}` : "off"),
    fields: [
      ["offsite.s3.bucket", "Bucket", "text"],
      ["offsite.s3.prefix", "Key prefix", "text"],
      ["offsite.s3.endpoint_url", "Endpoint URL", "text", { placeholder: "https://s3.example.com", wide: true }],
      ["offsite.s3.region", "Region", "text"],
      ["offsite.s3.access_key_id", "Access key id", "secret"],
      ["offsite.s3.secret_access_key", "Secret access key", "secret"],
      ["offsite.s3.retention_count", "Copies to keep", "number"],
      ["offsite.s3.compress", "Compression", "choice", { choices: ["none", "zstd"] }],
      ["offsite.s3.zstd_level", "zstd level", "number"],
      ["offsite.s3.age_recipients", "Encrypt to (age recipients)", "area"],
      ["offsite.s3.lock_mode", "Object Lock mode", "choice",
        { choices: ["", "GOVERNANCE", "COMPLIANCE"], names: { "": "Off" } }],
      ["offsite.s3.lock_days", "Lock days", "number"],
      ["offsite.s3.no_delete", "Never delete in the bucket", "bool"],
      ["offsite.s3.verify_download", "Verify each upload by downloading it", "bool"],
      ["offsite.s3.multipart_threshold_mb", "Multipart from (MiB)", "number"],
      ["offsite.s3.multipart_chunk_mb", "Part size (MiB)", "number"],
    ] },
  { id: "offsite-common", container: "offsite-config", title: "All off-site copies",
    summary: (v, secrets) => (secrets["offsite.age_identity"] ? "decryption key set" : "no decryption key"),
    fields: [
      ["offsite.age_identity", "Decryption key (age identity)", "secret", { area: true }],
      ["offsite.max_lag_minutes", "Health fails after (minutes without a copy)", "number"],
      ["offsite.verify_schedule", "Restore drill schedule (cron, UTC)", "text"],
    ] },
  { id: "pitr-settings", container: "pitr-config", title: "Point-in-time settings",
    summary: (v) => (v["pitr.enabled"] === "true" ? `on: ${v["pitr.replica_url"] || "no replica"}` : "off"),
    fields: [
      ["pitr.enabled", "Continuous protection on (Litestream)", "bool"],
      ["pitr.replica_url", "Replica", "text", { placeholder: "file:///srv/replica or s3://bucket/prefix", wide: true }],
      ["pitr.retention", "How far back", "text", { placeholder: "72h" }],
      ["pitr.max_lag_seconds", "Health fails when behind by (seconds)", "number"],
      ["pitr.s3_endpoint", "S3 endpoint URL", "text", { wide: true }],
      ["pitr.s3_region", "S3 region", "text"],
      ["pitr.s3_access_key_id", "S3 access key id", "secret"],
      ["pitr.s3_secret_access_key", "S3 secret access key", "secret"],
      ["pitr.age_recipients", "Seal to (age recipients)", "area"],
    ] },
  { id: "alerts-mail", container: "alerts-config", title: "Mail",
    summary: (v) => (v["email.smtp_host"] && v["email.to"] ? `on: to ${v["email.to"]}` : "off"),
    fields: [
      ["email.smtp_host", "SMTP server", "text", { placeholder: "smtp.example.com" }],
      ["email.smtp_port", "SMTP port", "number"],
      ["email.starttls", "Use STARTTLS", "bool"],
      ["email.username", "SMTP user", "text"],
      ["email.password", "SMTP password", "secret"],
      ["email.from", "From", "text", { placeholder: "backups@example.com" }],
      ["email.to", "To (comma-separated)", "text", { wide: true }],
    ] },
  { id: "alerts-pings", container: "alerts-config", title: "Pings (Healthchecks.io and alike)",
    summary: (v) => (v["healthchecks.url"] ? "on" : "off"),
    fields: [
      ["healthchecks.url", "Ping URL", "text", { placeholder: "https://hc-ping.com/<uuid>", wide: true }],
      ["healthchecks.all_backups", "Ping for manual backups too", "bool"],
      ["healthchecks.timeout_seconds", "Timeout (seconds)", "number"],
    ] },
];

const state = { app: null, built: false, values: {}, secrets: {}, dirty: new Set() };

const fieldId = (key) => `set-${key.replace(/\./g, "-")}`;

// ---- drawing -----------------------------------------------------------------------------

function control(key, kind, extra, described) {
  const id = fieldId(key);
  const common = { id, name: key, "aria-describedby": described, "data-key": key };
  if (kind === "bool") return el("input", { ...common, type: "checkbox" });
  if (kind === "choice") {
    const names = extra.names || {};
    return el("select", common, ...extra.choices.map((c) => el("option", { value: c, text: names[c] ?? c })));
  }
  if (kind === "secret" && extra.area) {  // a key of several lines, masked as a password is
    return el("textarea", { ...common, rows: 2, autocomplete: "off", spellcheck: "false", autocapitalize: "none",
                            autocorrect: "off", className: "masked", "data-secret": "" });
  }
  if (kind === "area") {
    return el("textarea", { ...common, rows: 2, autocomplete: "off", spellcheck: "false", autocapitalize: "none" });
  }
  if (kind === "secret") {
    return el("input", { ...common, type: "password", autocomplete: "new-password", spellcheck: "false" });
  }
  return el("input", { ...common, type: kind === "number" ? "number" : "text", inputmode: kind === "number" ? "numeric" : null,
                       autocomplete: "off", spellcheck: "false", autocapitalize: "none",
                       placeholder: extra.placeholder || null, ...(extra.wide ? { className: "wide" } : {}) });
}

function fieldRow([key, label, kind = "text", extra = {}], description) {
  const id = fieldId(key);
  const ids = [`${id}-help`, `${id}-error`];
  const input = control(key, kind, extra, ids.join(" "));
  const help = el("p", { id: ids[0], className: "muted help", text: description });
  const error = el("p", { id: ids[1], className: "field-error", hidden: true });
  if (kind === "bool") {
    return el("div", { className: "field check-field", "data-field": key },
              input, el("div", {}, el("label", { for: id, text: label }), help, error));
  }
  const row = el("div", { className: `field${extra.wide || kind === "area" || extra.area ? " wide" : ""}`, "data-field": key },
                 el("label", { for: id, text: label }));
  if (kind === "secret") {
    const stateText = el("span", { className: "secret-state", id: `${id}-state` });
    const clear = el("input", { type: "checkbox", id: `${id}-clear`, "data-clear": key });
    input.setAttribute("aria-describedby", `${id}-state ${ids.join(" ")}`);
    row.append(stateText, input,
               el("span", { className: "clear-secret", id: `${id}-clearrow` }, clear,
                  el("label", { for: `${id}-clear`, text: `Clear the stored ${label.toLowerCase()}` })));
  } else {
    row.append(input);
  }
  row.append(help, error);
  return row;
}

function buildForm(spec, known) {
  const fields = spec.fields.filter(([key]) => known.has(key));
  if (!fields.length) return null;
  const form = el("form", { id: `${spec.id}-form`, className: "settings-form", novalidate: true,
                            "aria-labelledby": `${spec.id}-title` });
  const grid = el("div", { className: "settings-grid" }, ...fields.map((f) => fieldRow(f, known.get(f[0]))));
  const error = el("div", { id: `${spec.id}-error`, className: "error-box", role: "alert", tabindex: "-1", hidden: true });
  const status = el("p", { id: `${spec.id}-status`, className: "notice", role: "status", tabindex: "-1", hidden: true });
  const save = el("button", { type: "submit", className: "secondary", id: `${spec.id}-save` },
                  el("span", { className: "spinner", "aria-hidden": "true" }), el("span", { className: "label", text: "Save" }));
  const undo = el("button", { type: "button", className: "secondary", id: `${spec.id}-undo`, text: "Undo changes" });
  form.append(el("h3", {}, el("span", { id: `${spec.id}-title`, text: spec.title }), " ",
                  el("span", { id: `${spec.id}-summary`, className: "summary-state" })),
              grid, error, status, el("div", { className: "actions" }, save, undo));
  form.addEventListener("input", (event) => edited(spec, event));
  form.addEventListener("change", (event) => edited(spec, event));
  form.addEventListener("submit", (event) => { event.preventDefault(); saveForm(spec, form); });
  undo.addEventListener("click", () => { state.dirty.delete(spec.id); clearErrors(spec, form); fill(spec, form, true); });
  return form;
}

function build(listing) {
  const known = new Map();
  for (const s of listing.settings || []) known.set(s.key, s.description);
  for (const s of listing.secrets || []) known.set(s.key, s.description);
  for (const spec of FORMS) {
    const container = $(spec.container);
    const form = container && buildForm(spec, known);
    if (!form) continue;
    let fold = $(`${spec.container}-details`);
    if (!fold) {
      fold = el("details", { id: `${spec.container}-details`, className: "settings-details" },
                el("summary", {}, "Settings ", el("span", { id: `${spec.container}-summary`, className: "summary-state" })));
      if (!container.closest(".card")) fold.classList.add("card"); // a view of its own
      container.append(fold);
    }
    fold.append(form);
  }
  state.built = true;
}

// ---- filling -----------------------------------------------------------------------------

function fill(spec, form, force) {
  $(`${spec.id}-summary`).textContent = `(${spec.summary(state.values, state.secrets)})`;
  if (!force && state.dirty.has(spec.id)) return; // never overwrite what someone is typing
  for (const input of form.querySelectorAll("[data-key]")) {
    const key = input.dataset.key;
    if (key in state.secrets) {
      input.value = "";
      const set = state.secrets[key];
      const id = fieldId(key);
      $(`${id}-state`).textContent = set ? "Set (hidden). Type a new value to replace it." : "Not set.";
      $(`${id}-clearrow`).hidden = !set;
      $(`${id}-clear`).checked = false;
      input.disabled = false;
      input.placeholder = set ? "•••••• (unchanged)" : "";
    } else if (input.type === "checkbox") {
      input.checked = state.values[key] === "true";
    } else {
      input.value = state.values[key] ?? "";
    }
  }
}

function fillAll() {
  const lines = {};
  for (const spec of FORMS) {
    const form = $(`${spec.id}-form`);
    if (!form) continue;
    fill(spec, form, false);
    (lines[spec.container] ||= []).push(`${spec.title.replace(/ \(.*\)$/, "")}: ${spec.summary(state.values, state.secrets)}`);
  }
  for (const [container, parts] of Object.entries(lines)) $(`${container}-summary`).textContent = `(${parts.join(" · ")})`;
}

/**
 * Draw the forms (once) and fill them from `GET /api/settings`. Call after login and on every
 * reload; `app` has `handleError(err)` (401 goes back to the login form) and `reload()`.
 */
export async function loadForms(app, listed = api("GET", "/api/settings")) {
  state.app = app;
  try {
    const listing = await listed;
    state.values = Object.fromEntries((listing.settings || []).map((s) => [s.key, s.value]));
    state.secrets = Object.fromEntries((listing.secrets || []).map((s) => [s.key, s.is_set]));
    if (!state.built) build(listing);
    fillAll();
  } catch (err) {
    app.handleError(err);
  }
}

// ---- saving ------------------------------------------------------------------------------

function edited(spec, event) {
  state.dirty.add(spec.id);
  const key = event.target.dataset.key || event.target.dataset.clear;
  if (key) markField(key, null);
  if (event.target.dataset.clear) {
    const input = $(fieldId(key));
    input.disabled = event.target.checked;
    if (event.target.checked) input.value = "";
  }
}

/** The changed fields of `form` as key → string, for `PUT /api/settings`. */
function changes(form) {
  const out = {};
  for (const input of form.querySelectorAll("[data-key]")) {
    const key = input.dataset.key;
    if (key in state.secrets) {
      if ($(`${fieldId(key)}-clear`).checked) out[key] = "";
      else if (input.value !== "") out[key] = input.value;
      continue;
    }
    const value = input.type === "checkbox" ? String(input.checked) : input.value;
    if (value !== (state.values[key] ?? "")) out[key] = value;
  }
  return out;
}

function markField(key, message) {
  const input = $(fieldId(key));
  const error = $(`${fieldId(key)}-error`);
  if (!input || !error) return false;
  error.textContent = message || "";
  error.hidden = !message;
  if (message) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
  return true;
}

function clearErrors(spec, form) {
  for (const input of form.querySelectorAll("[data-key]")) markField(input.dataset.key, null);
  $(`${spec.id}-error`).hidden = true;
  $(`${spec.id}-status`).hidden = true;
}

function tell(box, text) {
  box.textContent = text;
  box.hidden = false;
  box.focus();
}

async function saveForm(spec, form) {
  clearErrors(spec, form);
  const error = $(`${spec.id}-error`), status = $(`${spec.id}-status`);
  const body = changes(form);
  const keys = Object.keys(body);
  if (!keys.length) {
    tell(status, "Nothing to save: no field was changed.");
    return;
  }
  const button = $(`${spec.id}-save`);
  setBusy(button, true, "Saving…");
  try {
    await api("PUT", "/api/settings", { settings: body });
    for (const input of form.querySelectorAll("[data-key]")) {  // secrets leave the page once saved
      if (input.dataset.key in state.secrets) input.value = "";
    }
    state.dirty.delete(spec.id); // refilled with what is stored by the reload
    tell(status, `Saved ${keys.length === 1 ? "1 setting" : `${keys.length} settings`}: ${keys.join(", ")}.`);
    await state.app.reload();
  } catch (err) {
    if (err.status === 401) {
      state.app.handleError(err);
      return;
    }
    const details = (err.body && Array.isArray(err.body.details)) ? err.body.details : [];
    for (const detail of details) {
      const match = /^([\w.-]+): (.*)$/s.exec(detail);
      if (match) markField(match[1], match[2]);
    }
    tell(error, `Nothing was saved. ${err.message}`);
  } finally {
    setBusy(button, false);
  }
}

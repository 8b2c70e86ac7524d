// Turning sizes and times into words people read.

const UNITS = ["KiB", "MiB", "GiB", "TiB", "PiB"];

/**
 * Bytes in words, in binary units labelled as such: "1 byte", "512 bytes", "1.5 KiB", "10 MiB".
 * The same rules as the service's `human_size` (mission_control/units.py); halves round up.
 */
export function humanSize(bytes) {
  if (typeof bytes !== "number" || !isFinite(bytes)) return "—";
  if (bytes < 1024) return `${bytes} ${bytes === 1 ? "byte" : "bytes"}`;
  let value = bytes;
  for (const unit of UNITS) {
    value /= 1024;
    if (Math.round(value) < 1024 || unit === UNITS[UNITS.length - 1]) {
      const tenths = Math.round(value * 10);
      return tenths < 100 ? `${Math.floor(tenths / 10)}.${tenths % 10} ${unit}` : `${Math.round(value)} ${unit}`;
    }
  }
  return "—";
}

/** Seconds as "8 s", "2 min 05 s", for the time a running backup has taken so far. */
export function elapsedText(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s} s`;
  return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
}

/** A reason from the API ("no backup in 26 h") as a sentence: capital first letter, full stop. */
export function sentence(text) {
  return `${text.charAt(0).toUpperCase()}${text.slice(1)}.`;
}

const LOCAL = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
});

/** Unix seconds as the viewer's local date and time. */
export function localTime(seconds) {
  if (seconds == null) return "—";
  return LOCAL.format(new Date(seconds * 1000));
}

/** Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`. */
export function utcTime(seconds) {
  if (seconds == null) return "—";
  return new Date(seconds * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

/** Both, for one-line facts: "Nov 27, 2026, 04:00:00 (03:00:00 UTC)". */
export function bothTimes(seconds) {
  if (seconds == null) return "—";
  return `${localTime(seconds)} (${utcTime(seconds).slice(11)})`;
}

// One entry per action of the catalogue mission_control/audit_actions.py (a test keeps them equal);
// an action a third-party plugin adds reads as its name with spaces.
const ACTIONS = {
  login: "logged in",
  login_failed: "failed to log in",
  logout: "logged out",
  backup_create: "created a backup",
  backup_failed: "backup failed",
  backup_refused: "backup refused",
  backup_delete: "deleted a backup",
  backup_prune: "pruned an old backup",
  backup_prune_failed: "backup prune failed",
  backup_verify: "verified a backup",
  backup_download: "downloaded a backup",
  backup_upload: "uploaded a backup",
  backup_upload_refused: "backup upload refused",
  backup_restore: "restored a backup",
  backup_restore_failed: "restore failed",
  backup_restore_partial: "restored part of a backup",
  backup_restore_undo: "undid a partial restore",
  offsite_copy: "copied a backup off-site",
  offsite_failed: "off-site copy failed",
  offsite_fetch: "offsite fetch",
  offsite_fetch_refused: "offsite fetch refused",
  offsite_verify: "offsite verify",
  auto_backup: "ran the scheduled backup",
  settings_update: "changed settings",
  settings_reset: "reset a setting",
  alert_sent: "sent an alert",
  alert_failed: "alert not delivered",
  health_changed: "backup health changed",
  pitr_restarted: "pitr restarted",
  plugin_error: "plugin error",
};

/** Every catalogued action, `[action, words]`, in the catalogue's order (for the Activity filter). */
export function knownActions() {
  return Object.entries(ACTIONS);
}

export function actionText(action) {
  return ACTIONS[action] || action.replace(/_/g, " ");
}

/** A short line from an audit event's detail object. */
export function detailText(event) {
  const d = event.detail;
  if (d && typeof d === "object") {
    if (d.changes && typeof d.changes === "object") {
      return Object.entries(d.changes).map(([k, v]) => `${k}: ${v.old ?? "default"} → ${v.new}`).join(", ");
    }
    if (event.target_type === "offsite" && d.target) return `${d.target}: ${d.reason || d.name || ""}`;
    if (d.name) return d.ok === false ? `${d.name} (failed)` : d.name;
    if (d.reason) return String(d.reason);
    if (d.message) return String(d.message);
  }
  if (event.target_id == null) return "";
  return event.target_type === "backup" ? String(event.target_id) : `${event.target_type || ""} ${event.target_id}`.trim();
}

// Continuous protection on the page: Litestream's state, the restorable window, and the
// "restore to a moment" form (the restore itself goes through the page's restore dialog).
import { $ } from "./dom.js";
import { bothTimes, humanSize } from "./format.js";

/** Fill the card from `GET /api/backup/pitr`; hidden while protection is off. */
export function renderPitr(pitr) {
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
  const moment = $("pitr-moment");
  moment.dataset.earliest = open ? pitr.earliest : "";
  moment.dataset.latest = open ? pitr.latest : "";
  if (!moment.value && open) moment.value = new Date(pitr.latest).toISOString().replace(".000Z", "Z");
  $("pitr-submit").disabled = !open;
}

/**
 * The moment typed in the form as an ISO 8601 UTC string, or throw an Error saying why not.
 * The server checks again; this only spares a round trip for an obvious mistake.
 */
export function chosenMoment() {
  const input = $("pitr-moment");
  const text = input.value.trim();
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/i.test(text)) {
    throw new Error("Give the moment as an ISO 8601 time with its zone, e.g. 2026-11-27T15:52:56Z.");
  }
  const ms = Date.parse(text);
  const earliest = Number(input.dataset.earliest), latest = Number(input.dataset.latest);
  if (Number.isNaN(ms) || ms < earliest || ms > latest) {
    throw new Error("That moment is outside the restorable window shown above.");
  }
  return new Date(ms).toISOString();
}

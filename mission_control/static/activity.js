// The Activity view: the audit trail filtered by action and actor, logins and logouts folded away
// unless asked for, the client address of each event, and pages of 25 (GET /api/audit).
import { api } from "./api.js";
import { $, el } from "./dom.js";
import { knownActions } from "./format.js";
import { renderAudit, renderPager } from "./render.js";

const PAGE = 25;
const FOLDED = ["login", "logout"];
/** `asked`: numbers the loads, so that only the newest one draws (an older answer may come last). */
const state = { offset: 0, actors: new Set(), ctx: null, asked: 0 };

function filters() {
  const params = new URLSearchParams();
  const action = $("audit-action").value;
  const actor = $("audit-actor").value.trim();
  if (action) params.set("action", action);
  if (actor) params.set("actor", actor);
  return params;
}

function folding() {
  return !$("audit-action").value && !$("audit-logins").checked;
}

/** Load the page of events the filters and pager ask for (the page reloads it with the rest). */
export async function loadAudit() {
  const asked = ++state.asked;
  const fold = folding();
  const params = filters();
  const everything = new URLSearchParams(params);
  everything.set("limit", 1);
  if (fold) params.set("exclude_action", FOLDED.join(","));
  params.set("limit", PAGE);
  params.set("offset", state.offset);
  const [data, all] = await Promise.all([api("GET", `/api/audit?${params}`),
                                         fold ? api("GET", `/api/audit?${everything}`) : null]);
  if (asked !== state.asked) return undefined; // the filters or the page changed meanwhile
  const events = data.events || [];
  if (!events.length && state.offset > 0 && data.total > 0) {  // the page asked for is gone
    state.offset = Math.floor((data.total - 1) / PAGE) * PAGE;
    return loadAudit();
  }
  renderAudit(events);
  renderPager("audit", state.offset, events.length, data.total, PAGE, go);
  const folded = all ? all.total - data.total : 0;
  $("audit-folded").textContent = folded > 0
    ? `${folded} ${folded === 1 ? "login or logout is" : "logins and logouts are"} folded away; tick “Show logins and logouts” to see them.`
    : "";
  for (const e of events) if (e.actor) state.actors.add(e.actor);
  $("audit-actors").replaceChildren(...[...state.actors].sort().map((a) => el("option", { value: a })));
}

async function go(offset) {
  state.offset = offset;
  try {
    await loadAudit();
    $("audit-title").scrollIntoView({ block: "nearest" });
  } catch (err) {
    state.ctx.handleError(err);
  }
}

/** The filters: a change applies at once (from the first page); `ctx` is `{ handleError }`. */
export function wireAudit(ctx) {
  state.ctx = ctx;
  $("audit-action").append(...knownActions().map(([action, words]) => el("option", { value: action, text: words })));
  const apply = (event) => {
    if (event) event.preventDefault();
    go(0);
  };
  $("audit-filters").addEventListener("submit", apply);
  $("audit-action").addEventListener("change", () => apply());
  $("audit-logins").addEventListener("change", () => apply());
  $("audit-actor").addEventListener("change", () => apply());
}

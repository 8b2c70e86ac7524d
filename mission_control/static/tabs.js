// The page's views as tabs (Backups · Schedule & retention · Off-site · Point in time · Activity),
// named in the address's #fragment so each view can be linked to and Back returns to the last.
import { $ } from "./dom.js";

const TABS = ["backups", "schedule", "offsite", "pitr", "activity"];

function current() {
  return TABS.find((t) => $(`tab-${t}`).getAttribute("aria-selected") === "true") || TABS[0];
}

/** Show the view `name` (an unknown name keeps the current one); `focus`: move focus to its tab. */
export function showTab(name, focus) {
  const chosen = TABS.includes(name) ? name : current();
  for (const t of TABS) {
    const tab = $(`tab-${t}`);
    const on = t === chosen;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
    $(`view-${t}`).hidden = !on;
  }
  if (focus) $(`tab-${chosen}`).focus();
  const bar = $("tablist");
  if (bar.getBoundingClientRect().top < 0) bar.scrollIntoView({ block: "start" });
}

function choose(name) {
  if (name !== current()) history.pushState(null, "", `#${name}`);
  showTab(name, true);
}

/** Clicks, arrow keys (Home/End too) and the Back button move between the views. */
export function wireTabs() {
  for (const t of TABS) {
    $(`tab-${t}`).addEventListener("click", (event) => {
      event.preventDefault();  // no jump to an element of the same id
      choose(t);
    });
  }
  $("tablist").addEventListener("keydown", (event) => {
    const i = TABS.indexOf(current());
    const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: TABS.length - 1 }[event.key];
    if (next === undefined) return;
    event.preventDefault();
    choose(TABS[(next + TABS.length) % TABS.length]);
  });
  window.addEventListener("popstate", () => showTab(location.hash.slice(1) || TABS[0], false));
}

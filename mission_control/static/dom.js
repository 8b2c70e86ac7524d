// Small DOM helpers: build elements (text only, never HTML), and a button's busy state.

export const $ = (id) => document.getElementById(id);

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else if (key === "className") node.className = value;
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

export function timeEl(seconds, text) {
  const iso = seconds == null ? "" : new Date(seconds * 1000).toISOString();
  return el("time", { datetime: iso, text });
}

export function setBusy(button, busy, busyLabel) {
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

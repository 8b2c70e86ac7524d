// Talking to the service's JSON API: one fetch wrapper, and turning every error into words.

export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    super(describeError(status, body, retryAfter));
    this.status = status;
    this.body = body;
    this.retryAfter = retryAfter;
  }
}

function retryText(seconds) {
  if (seconds == null) return "";
  const at = new Date(Date.now() + seconds * 1000);
  const span = seconds < 120 ? `${seconds} seconds` : `${Math.ceil(seconds / 60)} minutes`;
  return ` Try again in ${span} (at ${at.toLocaleTimeString()}).`;
}

const FALLBACK = {
  400: "The request was not accepted.",
  401: "Please log in.",
  403: "You are not allowed to do that.",
  404: "Not found.",
  409: "Another backup or restore is running.",
  413: "That is too large for the server.",
  429: "Too many requests.",
  500: "The server could not do that. Its log has the details.",
  507: "Not enough disk space.",
};

export function describeError(status, body, retryAfter) {
  let text = (body && typeof body.error === "string" && body.error) ||
             (body && typeof body.message === "string" && body.message) ||
             FALLBACK[status] || `The server answered with status ${status}.`;
  if (!/[.!?]$/.test(text)) text += ".";
  if (body && Array.isArray(body.details) && body.details.length) {
    text += " " + body.details.join("; ") + ".";
  }
  if (status === 429 || status === 409 || retryAfter != null) text += retryText(retryAfter);
  return text;
}

async function send(path, init) {
  let response;
  try {
    response = await fetch(path, { credentials: "same-origin", ...init });
  } catch (err) {
    throw new Error("The service cannot be reached. Check that it is running and try again.");
  }
  let data = null;
  try {
    data = await response.json();
  } catch (err) {
    data = null;
  }
  if (!response.ok) {
    const raw = response.headers.get("Retry-After");
    const retry = raw != null && /^\d+$/.test(raw.trim()) ? parseInt(raw, 10) : null;
    throw new ApiError(response.status, data, retry);
  }
  return data;
}

/**
 * Call the API. Resolves with the parsed JSON; rejects with an ApiError (status, words, Retry-After)
 * or a plain Error when the service cannot be reached.
 */
export function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  return send(path, init);
}

/** Send a file as the raw request body to `POST /api/backup/upload` (streamed by the browser). */
export function uploadFile(file) {
  const path = `/api/backup/upload?filename=${encodeURIComponent(file.name)}`;
  return send(path, { method: "POST", body: file,
                      headers: { Accept: "application/json", "Content-Type": "application/octet-stream" } });
}

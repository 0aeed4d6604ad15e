// The delivery console: everything it shows and changes goes through the REST API with the
// tenant's API key as the Bearer header. The key lives in sessionStorage only (never a
// cookie, never a URL). Text from the API is always inserted as text, never as HTML:
// response bodies and headers come from the tenant's receivers.
//
// The same page is the embeddable portal (data-mode="portal", served at /portal/<id>): the
// credential is then the portal session token in the URL's fragment, which the browser
// never sends to a server; the API is /api/v1/portal, and what the session may not do
// (read-only, bound to some subscriptions) is not shown at all.

import { addSearchBox, searchTerms } from "./delivery_search.js";

const API = document.body.dataset.api;
const PORTAL = document.body.dataset.mode === "portal";
const PORTAL_TOKEN = PORTAL ? decodeURIComponent(location.hash.slice(1)) : null;
const KEY_STORAGE = "webhooks.apiKey";
const PAGE_SIZE = 50;
const SVG_NS = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);
const state = { subscriptions: [], editingId: null, deliveryCursor: null, deliveryLoads: 0,
                detailId: null, healthId: null, canWrite: true };

class ApiError extends Error {
  constructor(status, body) {
    const details = body && body.errors ? ` ${JSON.stringify(body.errors)}` : "";
    super(`${(body && body.message) || `HTTP ${status}`}${details}`);
    this.status = status;
  }
}

async function api(method, path, body) {
  const credential = PORTAL ? PORTAL_TOKEN : sessionStorage.getItem(KEY_STORAGE);
  const init = { method, cache: "no-store", credentials: "omit",
                 headers: { Authorization: `Bearer ${credential}` } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(API + path, init);
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (response.status === 401) {
    if (PORTAL) endPortal(data && data.error_code);
    else signOut("The API key was refused; sign in again.");
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (value !== false && value != null) element.setAttribute(name, value === true ? "" : value);
  }
  element.append(...children.flat().filter((child) => child != null));
  return element;
}

function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  element.append(...children);
  return element;
}

const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
const isoOrNull = (localValue) => (localValue ? new Date(localValue).toISOString() : null);
const minutesAgo = (minutes) => new Date(Date.now() - minutes * 60000).toISOString();

function notify(message, isError = false) {
  const notice = $("notice");
  notice.textContent = message;
  notice.classList.toggle("error", isError);
  notice.hidden = false;
}

// Runs an action of a button or form; any failure is shown instead of thrown away.
function guarded(action) {
  return async (event) => {
    if (event && event.preventDefault) event.preventDefault();
    try {
      await action(event);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) notify(error.message, true);
    }
  };
}

// Sign-in

async function signIn(event) {
  event.preventDefault();
  const apiKey = $("api-key").value.trim();
  $("api-key").value = "";
  sessionStorage.setItem(KEY_STORAGE, apiKey);
  try {
    await api("GET", "/subscriptions?limit=1");
  } catch (error) {
    sessionStorage.removeItem(KEY_STORAGE);
    $("sign-in-error").textContent = error.status === 401
      ? "This API key is unknown or revoked." : error.message;
    $("sign-in-error").hidden = false;
    $("sign-in").hidden = false;
    $("console").hidden = true;
    return;
  }
  await openConsole();
}

function signOut(message) {
  sessionStorage.removeItem(KEY_STORAGE);
  $("console").hidden = true;
  $("who").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = message || "";
  $("sign-in-error").hidden = !message;
  for (const body of document.querySelectorAll("#console tbody")) body.replaceChildren();
  $("secret").hidden = true;
  $("delivery-detail").hidden = true;
  $("subscription-health").hidden = true;
}

async function openConsole() {
  if (!PORTAL) {
    $("sign-in").hidden = true;
    $("sign-in-error").hidden = true;
    $("who").hidden = false;
  }
  $("console").hidden = false;
  await Promise.all([loadEventTypes(), loadSubscriptions(), loadDeliveries()]);
}

// Portal

const PORTAL_ENDED = {
  portal_session_expired: "This portal session has expired. Open the portal again from the application that brought you here.",
  portal_session_revoked: "This portal session was revoked. Open the portal again from the application that brought you here.",
};

function endPortal(errorCode) {
  $("console").hidden = true;
  $("portal-scope").hidden = true;
  for (const body of document.querySelectorAll("#console tbody")) body.replaceChildren();
  $("portal-ended-message").textContent = PORTAL_ENDED[errorCode]
    || "This portal link is not valid. Open the portal again from the application that brought you here.";
  $("portal-ended").hidden = false;
}

// What the session may not do is removed from the page, not merely hidden.
function applyAccess(access) {
  state.canWrite = !access.read_only;
  const removed = [...(access.read_only ? document.querySelectorAll("[data-write]") : []),
                   ...(access.can_create ? [] : document.querySelectorAll("[data-create]"))];
  for (const element of removed) element.remove();
  $("portal-scope").textContent = [access.read_only ? "Read only" : null,
    `session ends ${when(access.expires_at)}`].filter(Boolean).join(" · ");
  $("portal-scope").hidden = false;
}

async function openPortal() {
  const accent = document.body.dataset.accent;
  if (accent) document.documentElement.style.setProperty("--accent", accent);
  if (!PORTAL_TOKEN) {
    endPortal(null);
    return;
  }
  applyAccess(await api("GET", "/session"));
  await openConsole();
}

async function loadEventTypes() {
  const page = await api("GET", "/events?limit=250");
  $("event-type-names").replaceChildren(...page.items.map((type) => h("option", { value: type.name })));
}

// Subscriptions

async function loadSubscriptions() {
  const subscriptions = [];
  let cursor = null;
  do {
    const query = new URLSearchParams({ limit: 250 });
    if (cursor) query.set("cursor", cursor);
    const page = await api("GET", `/subscriptions?${query}`);
    subscriptions.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  state.subscriptions = subscriptions;
  $("subscription-table").tBodies[0].replaceChildren(...subscriptions.map(subscriptionRow));
  $("subscriptions-empty").hidden = subscriptions.length > 0;
  const filter = $("filter-subscription");
  const chosen = filter.value;
  filter.replaceChildren(h("option", { value: "" }, "any"), ...subscriptions.map(
    (subscription) => h("option", { value: subscription.id }, subscription.url)));
  filter.value = chosen;
}

// active · failing (n in a row) · paused · disabled: why
function subscriptionState(subscription) {
  let label = subscription.status;
  let detail = null;
  if (subscription.status === "disabled") detail = subscription.disabled_reason;
  else if (subscription.status === "active" && subscription.consecutive_failures > 0) {
    label = "failing";
    detail = `${subscription.consecutive_failures} failed attempts in a row`;
  }
  if (subscription.circuit_state && subscription.circuit_state !== "closed") {
    detail = [detail, `circuit ${subscription.circuit_state}`].filter(Boolean).join("; ");
  }
  return { label, detail };
}

function subscriptionRow(subscription) {
  const { label, detail } = subscriptionState(subscription);
  const sparkline = h("span", { class: "sparkline" }, "loading…");
  drawSparkline(subscription.id, sparkline);
  const button = (text, action) => h("button", { type: "button", onclick: guarded(action) }, text);
  const write = (text, action) => (state.canWrite ? button(text, action) : null);
  const paused = !subscription.is_active || subscription.status !== "active";
  return h("tr", { "data-id": subscription.id },
    h("td", {}, h("span", { class: "url" }, subscription.url),
      subscription.description ? h("small", {}, subscription.description) : null,
      h("small", {}, h("code", {}, subscription.id))),
    h("td", {}, subscription.event_types.join(", "),
      subscription.filter ? h("small", { class: "filter" }, "filter ",
        h("code", {}, JSON.stringify(subscription.filter))) : null),
    h("td", { class: "state" }, h("span", { class: `badge ${label}` }, label),
      detail ? h("small", { class: "why" }, detail) : null),
    h("td", {}, sparkline),
    h("td", { class: "actions" },
      write("Edit", () => showSubscriptionForm(subscription)),
      paused ? write("Enable", () => setActive(subscription.id, true))
             : write("Disable", () => setActive(subscription.id, false)),
      write("Rotate secret", () => rotateSecret(subscription.id)),
      write("Send test", () => sendTest(subscription.id)),
      button("Health", () => openHealth(subscription.id)),
      button("Deliveries", () => showDeliveriesOf(subscription.id))));
}

function showSubscriptionForm(subscription) {
  state.editingId = subscription ? subscription.id : null;
  $("subscription-form-title").textContent = subscription ? `Edit ${subscription.id}` : "New subscription";
  $("subscription-url").value = subscription ? subscription.url : "";
  $("subscription-events").value = subscription ? subscription.event_types.join(", ") : "";
  $("subscription-description").value = subscription ? subscription.description || "" : "";
  $("subscription-timeout").value = subscription ? subscription.timeout_seconds : 30;
  $("subscription-filter").value = subscription && subscription.filter
    ? JSON.stringify(subscription.filter, null, 2) : "";
  $("subscription-form-error").hidden = true;
  $("subscription-form").hidden = false;
  $("subscription-url").focus();
}

// An empty box is no filter (null: a PATCH removes it); the API checks the rest and names
// the place of each mistake (e.g. filter.all[1].gt).
function filterField() {
  const text = $("subscription-filter").value.trim();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(`The payload filter is not JSON: ${error.message}`);
  }
}

async function saveSubscription(event) {
  event.preventDefault();
  try {
    const fields = {
      url: $("subscription-url").value.trim(),
      event_types: $("subscription-events").value.split(",").map((name) => name.trim()).filter(Boolean),
      description: $("subscription-description").value.trim() || null,
      timeout_seconds: Number($("subscription-timeout").value),
      filter: filterField(),
    };
    if (state.editingId) {
      await api("PATCH", `/subscriptions/${state.editingId}`, fields);
      notify(`Saved ${state.editingId}.`);
    } else {
      const created = await api("POST", "/subscriptions", fields);
      showSecret(created);
    }
  } catch (error) {
    $("subscription-form-error").textContent = error.message;
    $("subscription-form-error").hidden = false;
    return;
  }
  $("subscription-form").hidden = true;
  await loadSubscriptions();
}

function showSecret(subscription) {
  $("secret-subscription").textContent = subscription.id;
  $("secret-value").textContent = subscription.secret;
  $("secret").hidden = false;
}

async function setActive(subscriptionId, isActive) {
  await api("PATCH", `/subscriptions/${subscriptionId}`, { is_active: isActive });
  notify(`${subscriptionId} ${isActive ? "enabled" : "disabled"}.`);
  await loadSubscriptions();
}

async function rotateSecret(subscriptionId) {
  showSecret(await api("POST", `/subscriptions/${subscriptionId}/rotate-secret`, {}));
  await loadSubscriptions();
}

async function sendTest(subscriptionId) {
  const result = await api("POST", `/subscriptions/${subscriptionId}/test`, {});
  const attempt = result.attempt || {};
  const answer = attempt.response_status != null ? `answered ${attempt.response_status}`
    : `no response (${attempt.error ? attempt.error.error_class : "unknown"})`;
  notify(`Test event ${result.event_id}: ${result.status}, ${answer}.`, result.status !== "success");
  await Promise.all([loadSubscriptions(), loadDeliveries()]);
  if (result.delivery_id) await openDelivery(result.delivery_id);
}

// Charts: inline SVG drawn from GET /subscriptions/{id}/stats (docs/HEALTH.md). The
// success rate is the API's `success_rate` (0..1, successes over finished deliveries, null
// when none finished): the page computes no figure of its own.

async function stats(subscriptionId, minutes, bucket) {
  const query = new URLSearchParams({ since: minutesAgo(minutes), bucket });
  return api("GET", `/subscriptions/${subscriptionId}/stats?${query}`);
}

const percent = (rate) => (rate == null ? "no deliveries" : `${Math.round(rate * 100)}%`);

async function drawSparkline(subscriptionId, target) {
  let result;
  try {
    result = await stats(subscriptionId, 24 * 60, "hour");
  } catch (error) {
    target.textContent = "error";
    target.title = error.message;
    return;
  }
  const width = 120, height = 24, pad = 3, slots = Math.max(result.series.length - 1, 1);
  // Hours without a finished delivery have no rate: they are skipped, not drawn as 0. The
  // padding keeps a dot in the first or last hour (the current one) whole.
  const points = result.series.map((bucket, index) => [index, bucket.success_rate])
    .filter(([, rate]) => rate != null)
    .map(([index, rate]) => [pad + (index / slots) * (width - 2 * pad),
                             height - pad - rate * (height - 2 * pad)]);
  const total = result.totals.success_rate;
  let line;
  if (points.length > 1) line = svg("polyline", { points: points.join(" "), class: "spark" });
  else if (points.length) line = svg("circle", { cx: points[0][0], cy: points[0][1], r: 2.5, class: "spark-dot" });
  else line = svg("line", { x1: 0, y1: height / 2, x2: width, y2: height / 2, class: "spark-empty" });
  target.replaceChildren(
    svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
                 "aria-label": `success rate ${percent(total)}` },
      svg("title", {}, `success rate over 24 h: ${percent(total)}`), line),
    h("span", { class: "rate" }, percent(total)));
}

async function openHealth(subscriptionId) {
  state.healthId = subscriptionId;
  $("health-subscription").textContent = subscriptionId;
  if ($("resend-result")) $("resend-result").textContent = "";  // gone when read-only
  $("subscription-health").hidden = false;
  await drawHealth();
  $("subscription-health").scrollIntoView();
}

async function drawHealth() {
  const result = await stats(state.healthId, 60, "minute");
  $("outcome-chart").replaceChildren(outcomeChart(result.series), legend(["success", "failure", "pending"]));
  $("latency-chart").replaceChildren(latencyChart(result.series), legend(["p50", "p90", "p99"]));
}

const CHART = { width: 640, height: 160, left: 44, bottom: 20 };

function axes(maximum, series, unit) {
  const { width, height, left, bottom } = CHART;
  const label = (x, y, text, anchor = "start") =>
    svg("text", { x, y, "text-anchor": anchor, class: "axis-label" }, text);
  return [
    svg("line", { x1: left, y1: 0, x2: left, y2: height - bottom, class: "axis" }),
    svg("line", { x1: left, y1: height - bottom, x2: width, y2: height - bottom, class: "axis" }),
    label(left - 4, 10, `${maximum}${unit}`, "end"),
    label(left - 4, height - bottom, "0", "end"),
    series.length ? label(left, height - 4, new Date(series[0].start).toLocaleTimeString()) : null,
    series.length ? label(width, height - 4, new Date(series.at(-1).start).toLocaleTimeString(), "end") : null,
  ].filter(Boolean);
}

function outcomeChart(series) {
  const { width, height, left, bottom } = CHART;
  const maximum = Math.max(1, ...series.map((b) => b.success + b.failure + b.pending));
  const slot = (width - left) / Math.max(series.length, 1);
  const scale = (height - bottom - 4) / maximum;
  const bars = series.flatMap((bucket, index) => {
    let top = height - bottom;
    return ["success", "failure", "pending"].filter((outcome) => bucket[outcome] > 0).map((outcome) => {
      const barHeight = bucket[outcome] * scale;
      top -= barHeight;
      return svg("rect", { x: left + index * slot + 1, y: top, width: Math.max(slot - 2, 1),
                           height: barHeight, class: outcome },
        svg("title", {}, `${new Date(bucket.start).toLocaleTimeString()}: ${bucket[outcome]} ${outcome}`));
    });
  });
  return svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
                      "aria-label": "deliveries per minute by outcome" },
    ...axes(maximum, series, ""), ...bars);
}

function latencyChart(series) {
  const { width, height, left, bottom } = CHART;
  const values = series.flatMap((b) => (b.latency_ms ? Object.values(b.latency_ms) : []))
    .filter((value) => value != null);
  const maximum = Math.max(1, ...values);
  const slot = (width - left) / Math.max(series.length, 1);
  const y = (value) => height - bottom - (value / maximum) * (height - bottom - 4);
  // A minute without deliveries has no latency: the line is broken there, not drawn to 0.
  // Every value also gets a dot, so that a minute between two empty ones still shows.
  const lines = ["p50", "p90", "p99"].flatMap((percentile) => {
    const points = series.map((bucket, index) => {
      const value = bucket.latency_ms ? bucket.latency_ms[percentile] : null;
      return value == null ? null : { x: left + (index + 0.5) * slot, y: y(value), bucket, value };
    });
    const d = points.flatMap((point, index) => (point == null ? []
      : [`${index && points[index - 1] != null ? "L" : "M"}${point.x},${point.y}`])).join(" ");
    const dots = points.filter(Boolean).map((point) => svg("circle",
      { cx: point.x, cy: point.y, r: 2.5, class: `dot ${percentile}` },
      svg("title", {}, `${new Date(point.bucket.start).toLocaleTimeString()}: ${percentile} ${Math.round(point.value)} ms`)));
    return [svg("path", { d: d || "M0,0", class: `line ${percentile}` }), ...dots];
  });
  return svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
                      "aria-label": "latency percentiles per minute" },
    ...axes(Math.round(maximum), series, " ms"), ...lines);
}

const legend = (names) => h("p", { class: "legend" },
  ...names.map((name) => h("span", {}, h("i", { class: `swatch ${name}` }), name)));

// The refusal (e.g. 409: the subscription is not active) is shown next to the buttons.
async function resend(kind, body) {
  let result;
  try {
    result = await api("POST", `/subscriptions/${state.healthId}/${kind}`, body);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status === 401) throw error;
    $("resend-result").textContent = error.message;
    $("resend-result").classList.add("error");
    return;
  }
  $("resend-result").classList.remove("error");
  $("resend-result").textContent = `${result.count} deliveries queued.`;
  await loadDeliveries();
}

const recoverWindow = () => resend("recover", {
  since: isoOrNull($("recover-since").value), until: isoOrNull($("recover-until").value) });

function replayMissing() {
  const since = isoOrNull($("replay-since").value);
  return resend("replay", since ? { since } : {});
}

// Deliveries

function deliveryQuery() {
  const query = new URLSearchParams({ limit: PAGE_SIZE });
  const filters = { status: $("filter-status").value, event_type: $("filter-event-type").value.trim(),
                    subscription_id: $("filter-subscription").value,
                    since: isoOrNull($("filter-since").value), until: isoOrNull($("filter-until").value) };
  for (const [name, value] of Object.entries(filters)) if (value) query.set(name, value);
  for (const [name, value] of searchTerms($("filter-search").value)) query.append(name, value);
  return query;
}

// Only the latest load fills the table: an answer to an older filter that arrives late is
// dropped. The table is aria-busy while a load is outstanding. A search the page cannot
// read, like a refusal of the API, is shown above the table.
async function loadDeliveries(append = false) {
  const load = ++state.deliveryLoads;
  $("delivery-table").setAttribute("aria-busy", "true");
  let page;
  try {
    const query = deliveryQuery();
    if (append) query.set("cursor", state.deliveryCursor);
    page = await api("GET", `/deliveries?${query}`);
  } catch (error) {
    if (load !== state.deliveryLoads || error.status === 401) return;
    $("deliveries-error").textContent = error.message;
    $("deliveries-error").hidden = false;
    return;
  } finally {
    if (load === state.deliveryLoads) $("delivery-table").removeAttribute("aria-busy");
  }
  if (load !== state.deliveryLoads) return;
  $("deliveries-error").hidden = true;
  const rows = page.items.map(deliveryRow);
  const body = $("delivery-table").tBodies[0];
  if (append) body.append(...rows);
  else body.replaceChildren(...rows);
  state.deliveryCursor = page.next_cursor;
  $("more-deliveries").hidden = !page.next_cursor;
  $("deliveries-empty").hidden = body.rows.length > 0;
}

function subscriptionLabel(subscriptionId) {
  const subscription = state.subscriptions.find((s) => s.id === subscriptionId);
  return subscription ? subscription.url : subscriptionId;
}

function deliveryRow(delivery) {
  return h("tr", { "data-id": delivery.id },
    h("td", {}, when(delivery.created_at)),
    h("td", {}, delivery.event_type),
    h("td", {}, subscriptionLabel(delivery.subscription_id)),
    h("td", {}, h("span", { class: `badge ${delivery.status}` }, delivery.status)),
    h("td", {}, String(delivery.attempt_count)),
    h("td", {}, lastResponse(delivery)),
    h("td", { class: "actions" },
      h("button", { type: "button", onclick: guarded(() => openDelivery(delivery.id)) }, "Attempts"),
      state.canWrite
        ? h("button", { type: "button", onclick: guarded(() => retryDelivery(delivery.id)) }, "Retry")
        : null));
}

const lastResponse = (delivery) => (delivery.last_response_status != null
  ? `HTTP ${delivery.last_response_status}` : delivery.last_error || "—");

function showDeliveriesOf(subscriptionId) {
  $("filter-subscription").value = subscriptionId;
  $("deliveries").scrollIntoView();
  return loadDeliveries();
}

function clearFilters() {
  $("delivery-filters").reset();
  return loadDeliveries();
}

async function openDelivery(deliveryId) {
  state.detailId = deliveryId;
  const delivery = await api("GET", `/deliveries/${deliveryId}`);
  $("detail-id").textContent = delivery.id;
  $("detail-summary").textContent = [
    `${delivery.event_type} (event ${delivery.event_id})`, `to ${subscriptionLabel(delivery.subscription_id)}`,
    delivery.status, `${delivery.attempt_count} attempt(s)`,
    delivery.next_retry_at ? `next retry ${when(delivery.next_retry_at)}` : null,
  ].filter(Boolean).join(" · ");
  $("attempts").replaceChildren(...delivery.attempts.map(attemptView));
  if (!delivery.attempts.length) $("attempts").append(h("p", {}, "No attempt yet."));
  $("delivery-detail").hidden = false;
  $("delivery-detail").scrollIntoView();
  return delivery;
}

function headerTable(headers) {
  if (!headers) return h("p", {}, "none");
  return h("table", { class: "headers" }, h("tbody", {}, ...Object.entries(headers).map(
    ([name, value]) => h("tr", {}, h("th", { scope: "row" }, name), h("td", {}, String(value))))));
}

function attemptView(attempt) {
  const outcome = attempt.response_status != null ? `HTTP ${attempt.response_status}` : "no response";
  return h("article", { class: "attempt", "data-attempt": attempt.attempt_number },
    h("h3", {}, `Attempt ${attempt.attempt_number} · ${attempt.trigger} · ${when(attempt.started_at)}`),
    h("dl", {},
      h("dt", {}, "Response"), h("dd", { class: "response-status" }, outcome),
      h("dt", {}, "Duration"), h("dd", {}, `${attempt.duration_ms} ms`),
      attempt.error ? [h("dt", {}, "Error"),
        h("dd", { class: "attempt-error" }, `${attempt.error.error_class}: ${attempt.error.message}`)] : null),
    h("details", {}, h("summary", {}, "Request headers (signatures and custom header values redacted)"),
      headerTable(attempt.request_headers)),
    h("details", {}, h("summary", {}, "Response headers"), headerTable(attempt.response_headers)),
    h("details", { open: attempt.response_body != null },
      h("summary", {}, "Response body (first 4 KiB)"),
      h("pre", { class: "body" }, attempt.response_body ?? "none")));
}

// A retry is queued (202): the new attempt is shown once the worker recorded it.
async function retryDelivery(deliveryId) {
  const before = await api("GET", `/deliveries/${deliveryId}`);
  await api("POST", `/deliveries/${deliveryId}/retry`);
  notify(`Retry of ${deliveryId} queued.`);
  for (let tries = 0; tries < 20; tries += 1) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const delivery = await api("GET", `/deliveries/${deliveryId}`);
    if (delivery.attempts.length > before.attempts.length) break;
  }
  await openDelivery(deliveryId);
  await Promise.all([loadDeliveries(), loadSubscriptions()]);
}

// Wiring

function start() {
  addSearchBox($("delivery-filters"));
  if (!PORTAL) {
    $("sign-in-form").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", () => signOut());
  }
  $("new-subscription").addEventListener("click", () => showSubscriptionForm(null));
  $("cancel-subscription").addEventListener("click", () => { $("subscription-form").hidden = true; });
  $("subscription-form").addEventListener("submit", guarded(saveSubscription));
  $("refresh-subscriptions").addEventListener("click", guarded(loadSubscriptions));
  $("secret-done").addEventListener("click", () => {
    $("secret").hidden = true;
    $("secret-value").textContent = "";
  });
  $("delivery-filters").addEventListener("submit", guarded(() => loadDeliveries()));
  $("clear-filters").addEventListener("click", guarded(clearFilters));
  $("more-deliveries").addEventListener("click", guarded(() => loadDeliveries(true)));
  $("detail-retry").addEventListener("click", guarded(() => retryDelivery(state.detailId)));
  $("detail-refresh").addEventListener("click", guarded(() => openDelivery(state.detailId)));
  $("detail-close").addEventListener("click", () => { $("delivery-detail").hidden = true; });
  $("refresh-health").addEventListener("click", guarded(drawHealth));
  $("close-health").addEventListener("click", () => { $("subscription-health").hidden = true; });
  $("recover-form").addEventListener("submit", guarded(recoverWindow));
  $("replay-form").addEventListener("submit", guarded(replayMissing));
  if (PORTAL) guarded(openPortal)();
  else if (sessionStorage.getItem(KEY_STORAGE)) guarded(openConsole)();
}

start();

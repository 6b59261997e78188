// The live-order page: quotes from /api/quote, orders through /api/orders,
// statuses from /ws/orders/{orderId}. Plain browser JavaScript, no build step.
// Long on purpose: one page with no build step is one script; its parts
// (quote, order, watch, wallet, waiting orders) share the page's state.
"use strict";

// The engine's tokens (orderengine/market/pools.toml); a pair without a pool
// shows the engine's own error under the quotes.
const TOKENS = ["SOL", "USDC", "USDT", "JUP", "BONK", "RAY"];
const QUOTE_EVERY_MS = 4000;
const HEALTH_EVERY_MS = 5000;
const RECENT_EVERY_MS = 10000;
const TERMINAL = new Set(["CONFIRMED", "FAILED", "CANCELLED", "EXPIRED"]);
// The statuses CancelOrder takes (orderengine/statuses.py): the page offers
// the button only there.
const CANCELLABLE = new Set(["PENDING", "OPEN"]);
const MAX_RESUMES = 5;

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name.startsWith("data-")) node.setAttribute(name, value);
    else node[name] = value;
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

// The API key: typed once, kept in this browser's localStorage, sent as
// "Authorization: Bearer" on HTTP and as the subprotocol "bearer.<key>" on
// the WebSocket (never in a URL).
const KEY_STORE = "orderengine.apiKey";
const apiKey = () => (localStorage.getItem(KEY_STORE) || "").trim();

async function api(path, options = {}) {
  const auth = apiKey() ? { authorization: `Bearer ${apiKey()}` } : {};
  const reply = await fetch(path, {
    ...options,
    headers: { "content-type": "application/json", ...auth, ...(options.headers || {}) },
  });
  const body = await reply.json().catch(() => ({}));
  if (!reply.ok) {
    const error = new Error(body.error ? body.error.message : `HTTP ${reply.status}`);
    error.field = body.error && body.error.field;
    throw error;
  }
  return body;
}

function shortId(id) {
  return `${id.slice(0, 8)}…`;
}

// -- the form and its quotes ---------------------------------------------------

const form = {
  amount: () => $("amount").value.trim(),
  input: () => $("input-token").value,
  output: () => $("output-token").value,
  slippage: () => $("slippage").value.trim(),
};

function fillTokens() {
  for (const [id, chosen] of [["input-token", "SOL"], ["output-token", "USDC"]]) {
    const select = $(id);
    for (const token of TOKENS) select.append(el("option", { value: token, textContent: token }));
    select.value = chosen;
  }
}

function showFormError(message, field) {
  const box = $("form-error");
  box.hidden = !message;
  box.textContent = message ? (field ? `${field}: ${message.replace(/^\w+: /, "")}` : message) : "";
}

let quoteController = null;
let quoteTimer = null;

async function refreshQuote() {
  clearTimeout(quoteTimer);
  quoteTimer = setTimeout(refreshQuote, QUOTE_EVERY_MS);
  if (quoteController) quoteController.abort();
  quoteController = new AbortController();
  const params = new URLSearchParams({
    inputToken: form.input(), outputToken: form.output(), amount: form.amount(),
  });
  if (form.slippage()) params.set("slippageBps", form.slippage());
  const list = $("quotes");
  if (!apiKey()) {
    list.replaceChildren(el("li", { class: "quote muted small", textContent: "Enter your API key (top right) to see quotes and orders." }));
    return;
  }
  try {
    const quote = await api(`/api/quote?${params}`, { signal: quoteController.signal });
    renderQuotes(quote);
    $("quote-time").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    if (error.name === "AbortError") return;
    list.replaceChildren(el("li", { class: "quote muted small", textContent: error.message }));
    $("best-out").textContent = "–";
    $("best-label").textContent = "(best route)";
    $("route-title").textContent = "Best route";
    $("route").replaceChildren();
    $("route-floor").textContent = "";
    shownRoute = null;
    showPrice();
  }
}

// -- routes: one pool, a path of hops, or a split -----------------------------

// The route in a few words. A route spends each token it holds on one leg
// (a path) or on several (a split); legs count pools, as each pool is on one.
function routeShape(route) {
  const tokens = new Set(route.legs.map((leg) => leg.inputToken)).size;
  const pools = new Set(route.legs.map((leg) => leg.poolId)).size;
  if (route.legs.length === 1) return { kind: "single", words: "one pool" };
  if (tokens === route.legs.length) return { kind: "path", words: `${route.legs.length} hops` };
  return { kind: "split", words: `split across ${pools} pools` };
}

function hopsText(route) {
  return [route.inputToken, ...route.legs.map((leg) => leg.outputToken)].join(" → ");
}

// A path (or one pool): the tokens in turn, then the pool of each hop.
function pathView(route) {
  const tokens = [el("li", { class: "token", textContent: route.inputToken })];
  for (const leg of route.legs) tokens.push(el("li", { class: "token", textContent: leg.outputToken }));
  const hops = route.legs.map((leg, i) => el("li", {
    class: "hop", "data-testid": "route-leg", "data-input-token": leg.inputToken, "data-pool-id": leg.poolId,
    title: `${leg.venue}: ${leg.amountIn} ${leg.inputToken} → ${leg.amountOut} ${leg.outputToken}`,
  },
  el("span", { class: "step-no", textContent: `${i + 1}.` }),
  el("span", { class: "pool", "data-venue": leg.venue, textContent: leg.poolId }),
  el("span", { class: "to", textContent: `${leg.inputToken} → ${leg.outputToken}` })));
  return el("div", { class: "route-path", "data-kind": "path" },
    el("ol", { class: "tokens" }, ...tokens), el("ol", { class: "hops" }, ...hops));
}

// A split: each token the route holds, and the share of it each leg swaps
// (the gateway's sharePct, the same figures the CLI prints).
function splitView(route) {
  const items = [];
  const tokens = [...new Set(route.legs.map((leg) => leg.inputToken))];
  tokens.forEach((token, i) => {
    const legs = route.legs.filter((leg) => leg.inputToken === token);
    items.push(el("li", { class: "route-token", textContent: i === 0 ? `${token}, split` : `then the ${token}` }));
    for (const leg of legs) {
      const bar = el("span", { class: "bar" });
      bar.style.width = `${leg.sharePct}%`;
      items.push(el("li", {
        class: "leg", "data-testid": "route-leg", "data-input-token": leg.inputToken, "data-pool-id": leg.poolId,
        title: `${leg.venue}: ${leg.amountIn} ${leg.inputToken} → ${leg.amountOut} ${leg.outputToken}`,
      },
      el("span", { class: "share", textContent: `${leg.sharePct} %` }),
      el("span", { class: "meter" }, bar),
      el("span", { class: "pool", "data-venue": leg.venue, textContent: leg.poolId }),
      el("span", { class: "to", textContent: `→ ${leg.outputToken}` })));
    }
  });
  return el("ol", { class: "route-legs", "data-kind": "split" }, ...items);
}

function routeView(route) {
  return routeShape(route).kind === "split" ? splitView(route) : pathView(route);
}

// "1 SOL = 139.038 USDC", or the other way round.
function priceText(route, inverse) {
  return inverse
    ? `1 ${route.outputToken} = ${route.inversePrice} ${route.inputToken}`
    : `1 ${route.inputToken} = ${route.price} ${route.outputToken}`;
}

let priceInverse = false;
let shownRoute = null;

function showPrice() {
  const button = $("price");
  button.hidden = !shownRoute;
  if (!shownRoute) return;
  button.textContent = priceText(shownRoute, priceInverse);
  button.title = `${priceText(shownRoute, !priceInverse)} (click to turn round)`;
}

function renderQuotes(quote) {
  const route = quote.route;
  const output = route.outputToken;
  const rows = quote.quotes.map((q, i) =>
    el("li", { class: i === 0 ? "quote best" : "quote", "data-venue": q.venue, "data-testid": "quote" },
      el("span", { class: "venue" }, q.venue,
        i === 0 ? el("span", { class: "badge", "data-testid": "best-venue", textContent: "best single venue" }) : null),
      el("span", { class: "out", textContent: `${q.amountOut} ${output}` }),
      el("span", {
        class: "meta",
        textContent: `${q.poolId} · fee ${q.fee} ${route.inputToken} · impact ${q.priceImpactPct}%`,
      })));
  $("quotes").replaceChildren(...rows);
  const shape = routeShape(route);
  $("best-out").textContent = route.amountOut;
  $("best-label").textContent = `(best route, ${shape.words})`;
  $("route-title").textContent = shape.kind === "path"
    ? `Best route (${shape.words}: ${hopsText(route)})`
    : `Best route (${shape.words})`;
  $("route").replaceChildren(routeView(route));
  $("route-floor").textContent = `at least ${route.minAmountOut} ${output} after slippage`;
  shownRoute = route;
  showPrice();
}

let quoteSoon = null;
function quoteSoonAfterTyping() {
  clearTimeout(quoteSoon);
  quoteSoon = setTimeout(refreshQuote, 250);
}

// -- watching one order ------------------------------------------------------

let watching = null; // { orderId, output, socket, last, start, resumes }

function describe(update, output) {
  switch (update.status) {
    case "PENDING": return "accepted, queued";
    case "ROUTING": return update.reason ? `attempt ${update.attempt}, after: ${update.reason}` : `attempt ${update.attempt}: asking every venue`;
    case "ROUTED": {
      const shape = routeShape(update.route);
      const how = shape.kind === "split" ? shape.words
        : shape.kind === "path" ? hopsText(update.route) : `${update.route.legs[0].venue} ${update.route.legs[0].poolId}`;
      return `${how}, expect ${update.route.amountOut} ${output}`;
    }
    case "SUBMITTED": return `sent, signature ${update.txHash.slice(0, 16)}…`;
    case "CONFIRMED": return `received ${update.amountOut} ${output}`;
    default: return update.reason || "";
  }
}

function setStatus(status) {
  const pill = $("order-status");
  pill.hidden = false;
  pill.textContent = status;
  pill.dataset.status = status;
  $("cancel-order").hidden = !CANCELLABLE.has(status);
}

async function cancelWatched() {
  const w = watching;
  if (!w) return;
  const button = $("cancel-order");
  button.disabled = true;
  try {
    // The CANCELLED event arrives on the socket like any other.
    await api(`/api/orders/${encodeURIComponent(w.orderId)}`, { method: "DELETE" });
    if (watching === w) button.hidden = true;
  } catch (error) {
    if (watching === w) $("watch-note").textContent = `not cancelled: ${error.message}`;
  } finally {
    button.disabled = false;
  }
}

function showUpdate(update) {
  const w = watching;
  const at = Date.parse(update.timestamp);
  if (w.start === null) w.start = at;
  const offset = `+${((at - w.start) / 1000).toFixed(3)}s`;
  $("timeline").append(
    el("li", { class: "step", "data-status": update.status, "data-testid": "step" },
      el("span", { class: "mark" }),
      el("span", { class: "name" }, el("span", { class: "seq", textContent: `#${update.sequence}` }), update.status),
      el("span", { class: "at", textContent: offset }),
      el("span", { class: "what", textContent: describe(update, w.output) })));
  setStatus(update.status);
  $("order-facts").hidden = false;
  if (update.route) {
    $("fact-route").replaceChildren(
      el("span", { class: "muted", textContent: routeShape(update.route).words }), routeView(update.route));
    $("fact-expected").textContent =
      `${update.route.amountOut} ${w.output} (at least ${update.route.minAmountOut})`;
    $("fact-price").textContent = priceText(update.route, false);
    $("fact-price").title = priceText(update.route, true);
  }
  if (update.txHash) {
    $("signature").textContent = update.txHash;
    $("copy-signature").hidden = false;
  }
  if (update.amountOut) $("fact-received").textContent = `${update.amountOut} ${w.output}`;
  if (update.status === "FAILED") $("fact-received").textContent = `nothing: ${update.reason}`;
  w.last = update.sequence;
}

function watchOrder(orderId, output) {
  if (watching && watching.socket) {
    watching.closedByUs = true;
    watching.socket.close();
  }
  watching = { orderId, output, socket: null, last: 0, start: null, resumes: 0, closedByUs: false };
  $("order-empty").hidden = true;
  $("order-id").textContent = orderId;
  $("timeline").replaceChildren();
  $("order-facts").hidden = true;
  for (const id of ["fact-route", "fact-expected", "fact-price", "fact-received", "signature"]) $(id).textContent = "–";
  $("copy-signature").hidden = true;
  $("cancel-order").hidden = true;
  $("watch-note").textContent = "";
  markWatchedRow();
  connect(watching);
}

function connect(w) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/orders/${w.orderId}?after=${w.last}`,
                               apiKey() ? [`bearer.${apiKey()}`] : []);
  w.socket = socket;
  socket.onmessage = (message) => {
    if (watching !== w) return;
    w.resumes = 0;
    showUpdate(JSON.parse(message.data));
  };
  socket.onclose = (event) => {
    if (watching !== w || w.closedByUs) return;
    if (event.code === 1000) {
      $("watch-note").textContent = "";
      refreshRecent();
      return;
    }
    // The gateway or the engine went away: resume after the last event seen.
    if ((event.code === 1006 || event.code === 1011 || event.code === 1012) && w.resumes < MAX_RESUMES) {
      w.resumes += 1;
      $("watch-note").textContent = `connection lost; resuming after #${w.last}…`;
      setTimeout(() => watching === w && connect(w), 500 * w.resumes);
      return;
    }
    $("watch-note").textContent = `stopped watching: ${event.reason || `code ${event.code}`}`;
  };
}

// -- recent orders -------------------------------------------------------------

function markWatchedRow() {
  for (const row of $("recent").children) {
    row.classList.toggle("watching", Boolean(watching) && row.dataset.orderId === watching.orderId);
  }
}

async function refreshRecent() {
  let page;
  if (!apiKey()) return;
  try {
    page = await api("/api/orders?pageSize=10");
  } catch (error) {
    return; // the health pill says why
  }
  const rows = page.orders.map((order) => {
    const created = new Date(order.createTime);
    const row = el("tr", { "data-order-id": order.orderId, "data-testid": "recent-order", title: "watch this order" },
      el("td", { textContent: created.toLocaleTimeString() }),
      el("td", { class: "id", textContent: shortId(order.orderId) }),
      el("td", { textContent: `${order.amount} ${order.inputToken} → ${order.outputToken}` }),
      el("td", {}, el("span", { class: "pill", "data-status": order.status, textContent: order.status })),
      el("td", { class: "num", textContent: order.amountOut ? `${order.amountOut} ${order.outputToken}` : "–" }));
    row.addEventListener("click", () => watchOrder(order.orderId, order.outputToken));
    return row;
  });
  $("recent").replaceChildren(...rows);
  $("recent-empty").hidden = rows.length > 0;
  markWatchedRow();
}

// -- health ---------------------------------------------------------------------

async function refreshHealth() {
  const box = $("health");
  try {
    const reply = await fetch("/healthz");
    const health = await reply.json();
    const up = reply.ok;
    box.dataset.state = up ? "up" : "down";
    $("health-text").textContent = up
      ? `OrderService ${health.upstream.address}`
      : `OrderService ${health.upstream.status.toLowerCase().replace("_", " ")}`;
  } catch (error) {
    box.dataset.state = "down";
    $("health-text").textContent = "gateway unreachable";
  }
}

// -- wiring ---------------------------------------------------------------------

async function submitOrder(event) {
  event.preventDefault();
  showFormError("");
  const button = $("submit");
  button.disabled = true;
  const body = { inputToken: form.input(), outputToken: form.output(), amount: form.amount() };
  if (form.slippage()) body.slippageBps = Number(form.slippage());
  try {
    const reply = await api("/api/orders", { method: "POST", body: JSON.stringify(body) });
    watchOrder(reply.orderId, body.outputToken);
    refreshRecent();
  } catch (error) {
    showFormError(error.message, error.field);
  } finally {
    button.disabled = false;
  }
}

function start() {
  fillTokens();
  $("api-key").value = apiKey();
  let keyTimer = null;
  $("api-key").addEventListener("input", () => {
    localStorage.setItem(KEY_STORE, $("api-key").value.trim());
    clearTimeout(keyTimer);
    keyTimer = setTimeout(() => { refreshQuote(); refreshRecent(); }, 300);
  });
  $("order-form").addEventListener("submit", submitOrder);
  for (const id of ["amount", "slippage"]) $(id).addEventListener("input", quoteSoonAfterTyping);
  for (const id of ["input-token", "output-token"]) $(id).addEventListener("change", refreshQuote);
  $("flip").addEventListener("click", () => {
    const input = form.input();
    $("input-token").value = form.output();
    $("output-token").value = input;
    refreshQuote();
  });
  $("refresh").addEventListener("click", refreshRecent);
  $("cancel-order").addEventListener("click", cancelWatched);
  $("price").addEventListener("click", () => { priceInverse = !priceInverse; showPrice(); });
  $("copy-signature").addEventListener("click", () => {
    navigator.clipboard && navigator.clipboard.writeText($("signature").textContent);
  });
  refreshQuote();
  refreshRecent();
  refreshHealth();
  setInterval(refreshHealth, HEALTH_EVERY_MS);
  setInterval(() => { if (!document.hidden) refreshRecent(); }, RECENT_EVERY_MS);
}

start();

// The live-order page: quotes from /api/quote, orders through /api/orders,
// statuses from /ws/orders/{orderId}. Plain browser JavaScript, no build step.
"use strict";

// The engine's tokens (orderengine/market/pools.toml); a pair without a pool
// shows the engine's own error under the quotes.
const TOKENS = ["SOL", "USDC", "USDT", "JUP", "BONK", "RAY"];
const QUOTE_EVERY_MS = 4000;
const HEALTH_EVERY_MS = 5000;
const RECENT_EVERY_MS = 10000;
const TERMINAL = new Set(["CONFIRMED", "FAILED", "CANCELLED", "EXPIRED"]);
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
    $("route").textContent = "";
  }
}

function renderQuotes(quote) {
  const output = quote.route.outputToken;
  const rows = quote.quotes.map((q, i) =>
    el("li", { class: i === 0 ? "quote best" : "quote", "data-venue": q.venue, "data-testid": "quote" },
      el("span", { class: "venue" }, q.venue, i === 0 ? el("span", { class: "badge", textContent: "best" }) : null),
      el("span", { class: "out", textContent: `${q.amountOut} ${output}` }),
      el("span", {
        class: "meta",
        textContent: `${q.poolId} · fee ${q.fee} ${quote.route.inputToken} · impact ${q.priceImpactPct}%`,
      })));
  $("quotes").replaceChildren(...rows);
  $("best-out").textContent = quote.route.amountOut;
  const legs = quote.route.legs.map((leg) => `${leg.venue} ${leg.poolId}`).join(" → ");
  $("route").textContent =
    `route: ${legs} · at least ${quote.route.minAmountOut} ${output} after slippage`;
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
      const legs = update.route.legs.map((leg) => `${leg.venue} ${leg.poolId}`).join(" → ");
      return `${legs}, expect ${update.route.amountOut} ${output}`;
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
    $("fact-route").textContent = update.route.legs
      .map((leg) => `${leg.venue} · ${leg.poolId} (${leg.amountIn} ${leg.inputToken} → ${leg.amountOut} ${leg.outputToken})`)
      .join(", then ");
    $("fact-expected").textContent =
      `${update.route.amountOut} ${w.output} (at least ${update.route.minAmountOut})`;
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
  for (const id of ["fact-route", "fact-expected", "fact-received", "signature"]) $(id).textContent = "–";
  $("copy-signature").hidden = true;
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

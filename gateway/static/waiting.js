// Waiting orders on the page: place a limit, stop or TWAP order for the
// swap form's pair, the pair's price live on a chart (TradingView's
// Lightweight Charts, vendored in /static/vendor) with each open order's
// price drawn on it, and the open orders with a cancel button.
// Plain browser JavaScript beside app.js; it shares only the DOM and the key.
"use strict";

(() => {
  const PRICE_EVERY_MS = 2000;
  const OPEN_EVERY_MS = 3000;
  const KEY_STORE = "orderengine.apiKey";
  const $ = (id) => document.getElementById(id);
  const state = { chart: null, series: null, lines: new Map(), open: [], pair: "" };
  window.waitingPage = state; // for the browser test and the curious

  async function call(path, options = {}) {
    const key = (localStorage.getItem(KEY_STORE) || "").trim();
    if (!key) throw new Error("enter your API key above");
    const reply = await fetch(path, {
      ...options,
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    });
    const body = await reply.json().catch(() => ({}));
    if (!reply.ok) {
      const field = body.error && body.error.field;
      const message = body.error ? body.error.message : `HTTP ${reply.status}`;
      throw new Error(field ? `${field}: ${message.replace(/^[\w.]+: /, "")}` : message);
    }
    return body;
  }

  const pair = () => ({ input: $("input-token").value, output: $("output-token").value });

  // An order's price in its pair's units (output per input): a limit's
  // minimum over its amount, a stop's trigger.
  function priceOf(order) {
    if (order.orderType === "limit") return Number(order.limit.minAmountOut) / Number(order.amount);
    if (order.orderType === "stop") return Number(order.stop.triggerPrice);
    return null;
  }

  function describe(order) {
    if (order.orderType === "limit") return `limit ≥ ${order.limit.minAmountOut} ${order.outputToken}`;
    if (order.orderType === "stop") return `stop at ${order.stop.triggerPrice}`;
    if (order.orderType === "sniper") {
      const bound = order.sniper.maxPrice ? ` ≤ ${order.sniper.maxPrice}` : "";
      return `sniper ${order.outputToken}${bound}`;
    }
    if (order.orderType === "twap") {
      const filled = order.amountOut ? `, ${order.amountOut} ${order.outputToken} filled` : "";
      return `twap ${order.twap.slices}×${order.twap.interval}${filled}`;
    }
    return order.orderType;
  }

  function makeChart() {
    const box = $("price-chart");
    if (!window.LightweightCharts || !box) return;
    state.chart = LightweightCharts.createChart(box, {
      height: 220,
      layout: { background: { color: "transparent" }, textColor: "#6b6f85" },
      grid: { vertLines: { color: "#eef0f6" }, horzLines: { color: "#eef0f6" } },
      timeScale: { timeVisible: true, secondsVisible: true },
      rightPriceScale: { borderVisible: false },
    });
    state.series = state.chart.addSeries(LightweightCharts.LineSeries, {
      color: "#6c4df6",
      lineWidth: 2,
      priceFormat: { type: "price", precision: 6, minMove: 0.000001 },
      // The scale holds the open orders' lines too, not only the price.
      autoscaleInfoProvider: (original) => {
        const base = original();
        const prices = [...state.lines.values()].map((line) => line.options().price);
        if (!prices.length) return base;
        let low = base ? base.priceRange.minValue : Math.min(...prices);
        let high = base ? base.priceRange.maxValue : Math.max(...prices);
        for (const price of prices) {
          low = Math.min(low, price);
          high = Math.max(high, price);
        }
        return { priceRange: { minValue: low, maxValue: high }, margins: base && base.margins };
      },
    });
  }

  function resetChart() {
    const now = `${pair().input}/${pair().output}`;
    if (now === state.pair) return;
    state.pair = now;
    if (state.series) state.series.setData([]);
    $("chart-pair").textContent = `${pair().output} per ${pair().input}`;
    drawLines();
  }

  let lastTime = 0;
  async function refreshPrice() {
    resetChart();
    const { input, output } = pair();
    const amount = $("amount").value.trim() || "1";
    try {
      const quote = await call(
        `/api/quote?inputToken=${input}&outputToken=${output}&amount=${encodeURIComponent(amount)}`,
      );
      if (!quote.price || !state.series) return;
      // One point a second at most: the chart's times are whole seconds.
      const time = Math.max(Math.floor(Date.now() / 1000), lastTime + 1);
      lastTime = time;
      state.series.update({ time, value: Number(quote.price) });
      $("chart-price").textContent = Number(quote.price).toPrecision(8);
    } catch (error) {
      $("chart-price").textContent = "–";
    }
  }

  // Each open order of the pair as a horizontal line at its price.
  function drawLines() {
    if (!state.series) return;
    const { input, output } = pair();
    const wanted = new Map();
    for (const order of state.open) {
      const price = priceOf(order);
      if (price === null || order.inputToken !== input || order.outputToken !== output) continue;
      wanted.set(order.orderId, { order, price });
    }
    for (const [id, line] of state.lines) {
      if (!wanted.has(id)) {
        state.series.removePriceLine(line);
        state.lines.delete(id);
      }
    }
    for (const [id, { order, price }] of wanted) {
      if (state.lines.has(id)) continue;
      const limit = order.orderType === "limit";
      state.lines.set(
        id,
        state.series.createPriceLine({
          price,
          color: limit ? "#109a6e" : "#e0413d",
          lineWidth: 1,
          lineStyle: LightweightCharts.LineStyle.Dashed,
          axisLabelVisible: true,
          title: `${order.orderType} ${order.orderId.slice(0, 8)}`,
        }),
      );
    }
  }

  async function refreshOpen() {
    let orders;
    try {
      orders = (await call("/api/orders?pageSize=200")).orders;
    } catch (error) {
      $("open-empty").textContent = error.message;
      $("open-empty").hidden = false;
      return;
    }
    state.open = orders.filter((order) => order.status === "OPEN");
    const body = $("open-orders");
    body.replaceChildren(
      ...state.open.map((order) => {
        const row = document.createElement("tr");
        row.dataset.testid = "open-order";
        row.dataset.orderId = order.orderId;
        const cancel = document.createElement("button");
        cancel.type = "button";
        cancel.className = "ghost small";
        cancel.textContent = "cancel";
        cancel.dataset.testid = "cancel";
        cancel.addEventListener("click", () => cancelOrder(order.orderId, cancel));
        const cells = [
          order.orderId.slice(0, 8) + "…",
          `${order.amount} ${order.inputToken} → ${order.outputToken}`,
          describe(order),
          order.expireTime ? new Date(order.expireTime).toLocaleString() : "until cancelled",
        ].map((text) => {
          const cell = document.createElement("td");
          cell.textContent = text;
          return cell;
        });
        const last = document.createElement("td");
        last.append(cancel);
        row.append(...cells, last);
        return row;
      }),
    );
    $("open-empty").textContent = "No waiting orders.";
    $("open-empty").hidden = state.open.length > 0;
    drawLines();
  }

  async function cancelOrder(orderId, button) {
    button.disabled = true;
    try {
      await call(`/api/orders/${orderId}`, { method: "DELETE" });
    } catch (error) {
      $("waiting-error").textContent = error.message;
      $("waiting-error").hidden = false;
    }
    await refreshOpen();
  }

  const EXPIRIES = { none: 0, "1m": 60, "1h": 3600, "1d": 86400 };

  async function place(event) {
    event.preventDefault();
    const { input, output } = pair();
    const kind = $("waiting-type").value;
    const value = $("waiting-value").value.trim();
    const body = {
      inputToken: input,
      outputToken: output,
      amount: $("amount").value.trim(),
      slippageBps: Number($("slippage").value) || 0,
    };
    if (kind === "limit") body.limit = { minAmountOut: value };
    else if (kind === "stop") body.stop = { triggerPrice: value };
    else {
      const [slices, every] = value.split("x");
      body.twap = { slices: Number(slices), interval: every || "" };
    }
    const seconds = EXPIRIES[$("waiting-expiry").value] || 0;
    if (seconds && kind !== "twap") {
      body.expireTime = new Date(Date.now() + seconds * 1000).toISOString();
    }
    $("waiting-error").hidden = true;
    try {
      await call("/api/orders", { method: "POST", body: JSON.stringify(body) });
    } catch (error) {
      $("waiting-error").textContent = error.message;
      $("waiting-error").hidden = false;
      return;
    }
    await refreshOpen();
  }

  const HINTS = {
    limit: "least you receive, e.g. 1500",
    stop: "price (output per input), e.g. 140",
    twap: "slices x interval, e.g. 4x30s",
  };

  function start() {
    makeChart();
    $("waiting-form").addEventListener("submit", place);
    $("waiting-type").addEventListener("change", () => {
      $("waiting-value").placeholder = HINTS[$("waiting-type").value];
    });
    for (const id of ["input-token", "output-token"]) {
      $(id).addEventListener("change", () => {
        resetChart();
        refreshPrice();
      });
    }
    resetChart();
    refreshPrice();
    refreshOpen();
    setInterval(refreshPrice, PRICE_EVERY_MS);
    setInterval(refreshOpen, OPEN_EVERY_MS);
  }

  document.addEventListener("DOMContentLoaded", start);
})();

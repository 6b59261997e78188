// The wallet card: the caller's balances on the simulated chain from
// /api/balances, and the faucet through /api/airdrop. Uses app.js's helpers
// ($, el, api, apiKey, TOKENS), loaded before it.
"use strict";

const BALANCES_EVERY_MS = 3000;

function walletNote(message, failed = false) {
  const note = $("wallet-note");
  note.textContent = message;
  note.classList.toggle("error-note", failed);
}

async function refreshBalances() {
  if (!apiKey()) {
    $("balances").replaceChildren();
    walletNote("Enter your API key (top right) to see your wallet.");
    return;
  }
  let reply;
  try {
    reply = await api("/api/balances");
  } catch (error) {
    walletNote(error.message, true);
    return;
  }
  $("balances").replaceChildren(...reply.balances.map((b) =>
    el("li", {
      class: b.amount === "0" ? "balance empty-balance" : "balance",
      "data-testid": "balance",
      "data-token": b.token,
    },
    el("span", { class: "token", textContent: b.token }),
    el("span", { class: "amount", textContent: b.amount }))));
  if ($("wallet-note").textContent.startsWith("Enter your API key")) walletNote("");
}

async function fundWallet(event) {
  event.preventDefault();
  const button = $("airdrop");
  button.disabled = true;
  const body = { token: $("airdrop-token").value, amount: $("airdrop-amount").value.trim() };
  try {
    const reply = await api("/api/airdrop", { method: "POST", body: JSON.stringify(body) });
    walletNote(`airdropped ${body.amount} ${body.token}; the wallet holds ${reply.balance.amount} ${reply.balance.token}`);
    refreshBalances();
  } catch (error) {
    walletNote(error.message, true);
  } finally {
    button.disabled = false;
  }
}

function startWallet() {
  const select = $("airdrop-token");
  for (const token of TOKENS) select.append(el("option", { value: token, textContent: token }));
  select.value = "SOL";
  $("airdrop-form").addEventListener("submit", fundWallet);
  let keyTimer = null;
  $("api-key").addEventListener("input", () => {
    clearTimeout(keyTimer);
    keyTimer = setTimeout(refreshBalances, 300);
  });
  refreshBalances();
  // Landed swaps and their fees move the balances: kept fresh while shown.
  setInterval(() => { if (!document.hidden) refreshBalances(); }, BALANCES_EVERY_MS);
}

startWallet();

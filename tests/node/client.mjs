// A Node.js client of OrderService: reads protos/ directly (no generated
// code), submits an order and follows it to its end.
//
//   npm ci --prefix tests/node
//   node tests/node/client.mjs 127.0.0.1:50051 SOL USDC 10
//
// Exits 0 when the order is CONFIRMED, 1 when it ends otherwise, 2 on an
// error (the gRPC code and message are printed).

import path from "node:path";
import { fileURLToPath } from "node:url";

import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const here = path.dirname(fileURLToPath(import.meta.url));
const PROTOS = path.resolve(here, "..", "..", "protos");
const TERMINAL = new Set(["CONFIRMED", "FAILED", "CANCELLED"]);

const [address = "127.0.0.1:50051", inputToken = "SOL", outputToken = "USDC", amount = "10"] =
  process.argv.slice(2);

const definition = protoLoader.loadSync("orderengine/v1/order_service.proto", {
  includeDirs: [PROTOS],
  longs: String, // int64 sequences, exactly
  enums: String, // "ORDER_STATUS_CONFIRMED"
  defaults: true,
});
const { orderengine } = grpc.loadPackageDefinition(definition);
const client = new orderengine.v1.OrderService(address, grpc.credentials.createInsecure());
// Every call carries the API key as "authorization: Bearer <key>".
const auth = new grpc.Metadata();
auth.set("authorization", `Bearer ${process.env.ORDERENGINE_API_KEY || ""}`);

const deadline = (seconds) => new Date(Date.now() + seconds * 1000);
const statusName = (status) => status.replace(/^ORDER_STATUS_/, "");
const venue = (value) => value.replace(/^VENUE_/, "").toLowerCase();

function submit() {
  return new Promise((resolve, reject) => {
    client.SubmitOrder({ inputToken, outputToken, amount }, auth, { deadline: deadline(10) },
      (error, reply) => (error ? reject(error) : resolve(reply.order)));
  });
}

function describe(event) {
  switch (statusName(event.status)) {
    case "ROUTED": {
      const legs = event.route.legs.map((leg) => `${venue(leg.venue)} ${leg.poolId}`).join(" + ");
      return `route: ${legs}, expect ${event.route.amountOut} ${outputToken}`;
    }
    case "SUBMITTED": return `signature ${event.signature}`;
    case "CONFIRMED": return `received ${event.amountOut} ${outputToken}, signature ${event.signature}`;
    default: return event.reason;
  }
}

function watch(orderId) {
  return new Promise((resolve, reject) => {
    let last = "";
    const stream = client.WatchOrder({ orderId, afterSequence: "0" }, auth, { deadline: deadline(60) });
    stream.on("data", (event) => {
      last = statusName(event.status);
      console.log(`  #${event.sequence} ${last} ${describe(event)}`.trimEnd());
    });
    stream.on("error", reject);
    // The stream ends after the terminal event.
    stream.on("end", () => resolve(last));
  });
}

try {
  const order = await submit();
  console.log(`order ${order.orderId}: ${order.amount} ${order.inputToken} -> ${order.outputToken}`);
  const final = await watch(order.orderId);
  console.log(TERMINAL.has(final) ? `final: ${final}` : `stream ended at ${final}`);
  process.exitCode = final === "CONFIRMED" ? 0 : 1;
} catch (error) {
  console.error(`error: ${grpc.status[error.code] ?? error.code}: ${error.details ?? error.message}`);
  process.exitCode = 2;
} finally {
  client.close();
}

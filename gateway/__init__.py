"""The HTTP + WebSocket gateway: a thin translator to OrderService over gRPC
for browsers and any language with an HTTP client, and a static live-order
page. It stores nothing; it imports only the generated stubs, its web
framework and the shared settings, and nothing imports it."""

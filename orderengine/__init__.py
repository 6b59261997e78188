"""What every part of the order engine shares: settings, tokens and amounts,
the order state machine, the store, the event bus, the market model and the
generated gRPC code (in ``orderengine.v1``)."""

"""The gRPC plumbing every server and channel uses: serving, channels,
authentication, TLS, keepalive, health, batch methods, request decoding."""

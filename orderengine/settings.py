"""Settings, read from environment variables. Every default is documented in
docs/operations.md ("Settings") and suits one machine; docker-compose.yml overrides
them for a real deployment. What clients read too (OrderService's address, the
API key, TLS) is orderengine.client.settings, which these extend."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TypeVar

from orderengine.client.settings import ORDER_SERVICE_DEFAULT as ORDER_SERVICE_DEFAULT
from orderengine.client.settings import ClientSettings
from orderengine.client.settings import env_value as env_value

T = TypeVar("T")


def _url(address: str) -> str:
    address = address.rstrip("/")
    return address if "://" in address else f"http://{address}"


def _parsed(name: str, default: T, parse: Callable[[str], T], what: str) -> T:
    raw = env_value(name, str(default))
    try:
        return parse(raw)
    except ValueError:
        raise ValueError(f"{name} must be {what}, got {raw!r}") from None


SUBMIT_RATE_DEFAULT = 10000.0  # SubmitOrder orders per second per owner


def _float(name: str, default: float) -> float:
    return _parsed(name, default, float, "a number")


def _int(name: str, default: int) -> int:
    return _parsed(name, default, int, "an integer")


def _seconds(name: str, default: float, most: float) -> float:
    """A duration from 0 to ``most`` seconds."""

    def parse(raw: str) -> float:
        value = float(raw)
        if not 0 <= value <= most:  # also refuses nan
            raise ValueError(raw)
        return value

    return _parsed(name, default, parse, f"a number of seconds from 0 to {most:g}")


def _percent(name: str, default: str) -> Decimal:
    """A share in percent, more than 0 and at most 100, read exactly."""

    def parse(raw: str) -> Decimal:
        try:
            value = Decimal(raw)
        except InvalidOperation:
            raise ValueError(raw) from None
        if not value.is_finite() or not 0 < value <= 100:
            raise ValueError(raw)
        return value

    return _parsed(name, Decimal(default), parse, "a percentage above 0 and at most 100")


@dataclass(frozen=True)
class Settings(ClientSettings):
    database_url: str = field(
        default_factory=lambda: env_value("DATABASE_URL", "sqlite:///var/orderengine.db")
    )
    redis_url: str = field(
        default_factory=lambda: env_value("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    # The simulated chain's own store (its transactions and the pools): the
    # chain is not ours, so losing our Redis must not make it forget what
    # landed. Defaults to REDIS_URL.
    chain_redis_url: str = field(
        default_factory=lambda: env_value(
            "CHAIN_REDIS_URL", env_value("REDIS_URL", "redis://127.0.0.1:6379/0")
        )
    )

    # Where clients find each service (OrderService's: ClientSettings); a
    # server binds to *_BIND, or to its address when that is unset.
    quote_service_address: str = field(
        default_factory=lambda: env_value("QUOTE_SERVICE_ADDRESS", "127.0.0.1:50052")
    )
    execution_service_address: str = field(
        default_factory=lambda: env_value("EXECUTION_SERVICE_ADDRESS", "127.0.0.1:50053")
    )

    # Where browsers find the HTTP/WebSocket gateway (a URL).
    gateway_address: str = field(
        default_factory=lambda: _url(env_value("GATEWAY_ADDRESS", "http://127.0.0.1:8080"))
    )

    # What one client may hold of the gateway (gateway/connections.py): a
    # connection sends a request's line and headers within this many seconds
    # of opening or of its last response, or is closed (slow clients)...
    gateway_header_timeout_seconds: float = field(
        default_factory=lambda: _float("GATEWAY_HEADER_TIMEOUT_SECONDS", 10.0)
    )
    # ...stays idle between requests at most this long...
    gateway_keep_alive_seconds: int = field(
        default_factory=lambda: _int("GATEWAY_KEEP_ALIVE_SECONDS", 5)
    )
    # ...and past this many open connections (HTTP and WebSocket) a new one is
    # answered 503 at once, before the process runs out of file descriptors.
    gateway_max_connections: int = field(
        default_factory=lambda: _int("GATEWAY_MAX_CONNECTIONS", 10_000)
    )

    queue_name: str = field(default_factory=lambda: env_value("QUEUE_NAME", "orders"))
    # Back-pressure: past this many queued orders SubmitOrder answers
    # RESOURCE_EXHAUSTED instead of letting the backlog grow without end.
    # About a minute of make run's two workers on two cores: a burst of the
    # seed's load (10 s at 256 concurrent, accepted at 2-3x the rate the
    # workers execute) queues rather than being refused.
    max_queue_depth: int = field(default_factory=lambda: _int("MAX_QUEUE_DEPTH", 50_000))
    # A worker driving an order holds its lease this long; a worker that
    # dies leaves the order to the reconciler once the lease runs out.
    order_lease_seconds: float = field(default_factory=lambda: _float("ORDER_LEASE_SECONDS", 15.0))
    # A worker whose job is small and has nothing queued behind it waits
    # this long for more before driving: orders that trickle in are then
    # driven together, at one job's, one call's and one commit's cost. A
    # backlog never waits. 0 drives every job at once.
    drive_linger_seconds: float = field(
        default_factory=lambda: _seconds("DRIVE_LINGER_SECONDS", 0.05, most=1.0)
    )

    # The simulated chain: a swap lands (processed) one slot after it is
    # taken and is confirmed confirm_seconds later.
    slot_seconds: float = field(default_factory=lambda: _float("CHAIN_SLOT_SECONDS", 0.4))
    confirm_seconds: float = field(default_factory=lambda: _float("CHAIN_CONFIRM_SECONDS", 0.6))
    # A transaction not landed this long after it was sent never will (its
    # blockhash expired): only then may a client call it dropped.
    blockhash_valid_seconds: float = field(
        default_factory=lambda: _float("CHAIN_BLOCKHASH_VALID_SECONDS", 60.0)
    )
    # Failures real swaps meet, injected at these rates (0 to 1).
    blockhash_expired_rate: float = field(
        default_factory=lambda: _float("CHAIN_BLOCKHASH_EXPIRED_RATE", 0.0)
    )
    dropped_rate: float = field(default_factory=lambda: _float("CHAIN_DROPPED_RATE", 0.0))
    rpc_timeout_rate: float = field(default_factory=lambda: _float("CHAIN_RPC_TIMEOUT_RATE", 0.0))
    insufficient_funds_rate: float = field(
        default_factory=lambda: _float("CHAIN_INSUFFICIENT_FUNDS_RATE", 0.0)
    )
    # Seeds the injected failures, for runs that repeat; empty: random.
    chain_seed: str = field(default_factory=lambda: env_value("CHAIN_SEED", ""))
    # The chain's faucet (RequestAirdrop), per token in whole tokens: the most
    # one call gives, and the most one owner is given in all. A token not
    # named is not given. Checked when ExecutionService starts.
    faucet_max_per_call: str = field(
        default_factory=lambda: env_value(
            "FAUCET_MAX_PER_CALL",
            "SOL=100,USDC=10000,USDT=10000,JUP=10000,RAY=5000,BONK=1000000000",
        )
    )
    faucet_max_per_owner: str = field(
        default_factory=lambda: env_value(
            "FAUCET_MAX_PER_OWNER",
            "SOL=1000,USDC=100000,USDT=100000,JUP=100000,RAY=50000,BONK=10000000000",
        )
    )

    # Other traders (python -m orderengine.local.traders): make run starts this
    # many seeded random noise swaps a second on the chain's pools, beside
    # arbitrageurs that trade them to each token's moving reference price,
    # landed as the chain lands swaps, so quotes go stale as on mainnet.
    # Gentle by default; 0 starts none (tests and benchmarks that need a
    # still market).
    market_flow_rate: float = field(default_factory=lambda: _float("MARKET_FLOW_RATE", 2.0))
    # The same seed walks the same reference prices and makes the same
    # choices of pool, side and size.
    market_flow_seed: int = field(default_factory=lambda: _int("MARKET_FLOW_SEED", 0))
    # Token launches the market flow makes an hour, on average (0: none):
    # rare, so that the market stays the one pools.toml describes.
    market_launch_rate: float = field(default_factory=lambda: _float("MARKET_LAUNCH_RATE", 2.0))

    # QuoteService refuses a route whose price impact (docs/market.md, "Price
    # impact") is above this, in percent: SubmitOrder refuses the order, and
    # an order whose quote passes it when routed fails. 100 refuses none.
    max_price_impact_pct: Decimal = field(
        default_factory=lambda: _percent("MAX_PRICE_IMPACT_PCT", "15")
    )

    # Retries of transient failures: base * factor**(attempt-1), capped, with
    # full jitter; FAILED after max_attempts.
    max_attempts: int = field(default_factory=lambda: _int("MAX_ATTEMPTS", 3))
    retry_base_seconds: float = field(default_factory=lambda: _float("RETRY_BASE_SECONDS", 0.5))
    retry_factor: float = field(default_factory=lambda: _float("RETRY_FACTOR", 2.0))
    retry_cap_seconds: float = field(default_factory=lambda: _float("RETRY_CAP_SECONDS", 8.0))

    # The confirmation tracker polls the chain for submitted swaps this often.
    tracker_poll_seconds: float = field(
        default_factory=lambda: _float("TRACKER_POLL_SECONDS", 0.05)
    )
    # Orders in a non-terminal status untouched this long are driven again,
    # unless a worker holds their lease or their job is still queued...
    reconcile_after_seconds: float = field(
        default_factory=lambda: _float("RECONCILE_AFTER_SECONDS", 10.0)
    )
    # The trigger part waits this long for a pool change before it looks
    # for orders that became OPEN and for expiries (docs/architecture.md).
    trigger_poll_seconds: float = field(default_factory=lambda: _float("TRIGGER_POLL_SECONDS", 0.1))
    # ...for less than this long: past it the job is taken to be lost.
    queue_patience_seconds: float = field(
        default_factory=lambda: _float("QUEUE_PATIENCE_SECONDS", 120.0)
    )

    # Access (docs/operations.md, "API keys and the internal token"). The secret the engine's own services show
    # each other: QuoteService and ExecutionService refuse to start without
    # it, and take calls only with it. make run makes one per run.
    internal_token: str = field(default_factory=lambda: env_value("INTERNAL_TOKEN", ""))
    # OrderService remembers a verified API key this long, so that auth adds
    # no database query per call; a revoked key works at most this long after.
    api_key_cache_seconds: float = field(
        default_factory=lambda: _float("API_KEY_CACHE_SECONDS", 5.0)
    )
    # Limits (docs/api.md, "Limits"). SubmitOrder calls per second per owner, a
    # token bucket in Redis shared by every OrderService replica, holding up
    # to submit_burst (default: two seconds' worth); 0 turns it off. The
    # default is above what one OrderService accepts on a small machine
    # (up to 7,300 a second with nothing executing, docs/performance.md), so
    # one client of one replica never meets it; it keeps one owner from
    # taking every replica of a larger deployment.
    submit_rate_per_second: float = field(
        default_factory=lambda: _float("SUBMIT_RATE_PER_SECOND", SUBMIT_RATE_DEFAULT)
    )
    submit_burst: int = field(
        default_factory=lambda: _int(
            "SUBMIT_BURST",
            max(1, round(2 * _float("SUBMIT_RATE_PER_SECOND", SUBMIT_RATE_DEFAULT))),
        )
    )
    # Open WatchOrder streams per owner on one OrderService process: each
    # holds memory there (docs/performance.md), so the cap guards that process.
    watch_streams_per_owner: int = field(
        default_factory=lambda: _int("WATCH_STREAMS_PER_OWNER", 100)
    )
    # How often OrderService asks the database which watched orders went
    # further than their streams sent (a publish lost with Redis up): the
    # longest a watcher may wait for such an event. One read for all streams.
    watch_check_seconds: float = field(default_factory=lambda: _float("WATCH_CHECK_SECONDS", 15.0))

    # Metrics (docs/operations.md, "Metrics"): the port this process serves
    # Prometheus /metrics on; 0 picks a free one (logged); empty or "off":
    # none. make run gives each part its own, counting up from this one.
    metrics_port: int | None = field(
        default_factory=lambda: (
            None if env_value("METRICS_PORT", "off").lower() == "off" else _int("METRICS_PORT", 0)
        )
    )
    # Where /metrics listens (0.0.0.0 in a container).
    metrics_host: str = field(default_factory=lambda: env_value("METRICS_HOST", "127.0.0.1"))
    # A second, plaintext port on each gRPC server's host that serves only
    # the health service: for probes that cannot speak TLS (Kubernetes'
    # grpc probes). Empty or "off": none.
    health_port: int | None = field(
        default_factory=lambda: (
            None if env_value("HEALTH_PORT", "off").lower() == "off" else _int("HEALTH_PORT", 0)
        )
    )

    # Observability (docs/operations.md, "Request ids and call logs", "Tracing").
    # Where spans go: none (the default: no tracer, no tracing interceptor),
    # console (a JSON line a span on standard output) or otlp.
    traces_exporter: str = field(default_factory=lambda: env_value("OTEL_TRACES_EXPORTER", "none"))
    # The collector's gRPC address for otlp; empty: the exporter's default,
    # http://localhost:4317.
    otlp_endpoint: str = field(default_factory=lambda: env_value("OTEL_EXPORTER_OTLP_ENDPOINT", ""))
    # The process's name in traces; empty: its own (order-service, executor-worker...).
    service_name: str = field(default_factory=lambda: env_value("OTEL_SERVICE_NAME", ""))
    # A successful call slower than this is logged at INFO; quicker, at DEBUG.
    call_log_slow_ms: float = field(default_factory=lambda: _float("CALL_LOG_SLOW_MS", 250.0))

    # How long a gRPC server waits for in-flight calls on SIGTERM.
    shutdown_grace_seconds: float = field(
        default_factory=lambda: _float("SHUTDOWN_GRACE_SECONDS", 5.0)
    )
    # Before that, how long at most it keeps taking calls after reporting
    # NOT_SERVING, while they still come (serving.Server.stop).
    shutdown_drain_seconds: float = field(
        default_factory=lambda: _float("SHUTDOWN_DRAIN_SECONDS", 2.0)
    )

    def bind_address(self, service: str) -> str:
        """The address a server listens on: ``<SERVICE>_BIND``, else its address."""
        address = {
            "ORDER_SERVICE": self.order_service_address,
            "QUOTE_SERVICE": self.quote_service_address,
            "EXECUTION_SERVICE": self.execution_service_address,
        }[service]
        return env_value(f"{service}_BIND", address)

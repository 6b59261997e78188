"""TLS of the servers, the channels and the gateway: the client's own
(orderengine.client.tls), as the engine's processes read the same TLS_*
settings as any client."""

from orderengine.client.tls import Tls as Tls
from orderengine.client.tls import TlsConfigError as TlsConfigError
from orderengine.client.tls import tls as tls

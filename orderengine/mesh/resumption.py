"""When a WatchOrder stream breaks, open it again after the last event seen:
the client's policy (orderengine.client.resumption), which the gateway's
WebSocket follows too."""

from orderengine.client.resumption import RESUMABLE as RESUMABLE
from orderengine.client.resumption import Resumption as Resumption

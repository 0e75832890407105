"""The consumer runtime: per-delivery concurrency, lease renewal, poison isolation, clean shutdown.

`Worker` runs the subscriptions of one Bus on an asyncio loop: async
handlers on the loop, sync handlers in a bounded thread pool, at most
`concurrency` deliveries in flight per subscription, each lease renewed while
its handler works. polybus.App (the service API) and `polybus run` build on it.
"""

from polybus.core.runtime.context import Context
from polybus.core.runtime.handlers import HandlerCall, bind_handler
from polybus.core.runtime.worker import RuntimeSettings, Worker

__all__ = ["Context", "HandlerCall", "RuntimeSettings", "Worker", "bind_handler"]

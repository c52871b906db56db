"""Feature modules; importing this package registers every JSON-RPC method."""
from . import (  # noqa: F401
    caller_lists,
    calls,
    cdrs,
    dialplan,
    discover,
    extensions,
    forwarding,
    numbers,
    route,
    sip_accounts,
    sites,
    tenants,
    time_plans,
    tokens,
    trunks,
    users,
)

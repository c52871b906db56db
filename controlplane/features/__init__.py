"""Feature modules; importing this package registers every JSON-RPC method."""
from . import (  # noqa: F401
    calls,
    cdrs,
    dialplan,
    discover,
    extensions,
    numbers,
    sip_accounts,
    sites,
    tenants,
    tokens,
    trunks,
    users,
)

"""Feature modules; importing this package registers every JSON-RPC method."""
from . import calls, cdrs, discover, extensions, sip_accounts, tenants, tokens, users  # noqa: F401

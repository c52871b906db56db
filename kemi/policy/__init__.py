"""The policy core: pure functions `(facts, snapshot, now) -> Decision`.

No KSR, no sockets, no database, no clock reads: everything a decision depends on is passed in.
The control plane imports this package to simulate routing with the code that routes live calls.
"""

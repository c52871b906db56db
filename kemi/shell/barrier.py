"""The exception barrier: every entry point Kamailio calls runs inside `guard`.

A bug may cost one request, never silence: an unexpected exception is logged once (route, method,
Call-ID, the exception and where it was raised), counted in htable `cmerr` by route (the control
plane exports it as `callmanager_routing_errors_total{route}`), and — in the request route, where a
reply is possible — answered `500 Server Internal Error` with a `Retry-After`: statelessly, or on
the request's transaction when one was created before the failure. Never a reply to an ACK (it has
none) nor to a request the shell had already answered, relayed, held or deliberately dropped (the shell
marks each of those with `settled()`; the request route starts with `begin()`).
The barrier itself never raises: each of its steps is guarded on its own.
"""

from __future__ import annotations

import traceback

from kemi import contract as shm

ERRORS = shm.ERRORS.name  # route name -> unexpected exceptions since Kamailio started
RETRY_AFTER_S = 5
_SETTLED = [False]  # this worker's current request was answered, relayed, held or dropped on purpose
ROUTES = (
    "request",
    "branch_reply",
    "media_branch",
    "failure",
    "dialog_event",
    "acd_timer",
    "acd_resume",
    "shared_timer",
    "xhttp",
)


def begin() -> None:
    _SETTLED[0] = False


def settled() -> None:
    """The current request has its answer (a reply, a relay, a hold in a queue, a deliberate drop)."""
    _SETTLED[0] = True


def guard(route: str, fn, *args) -> int:
    """Run one entry point; on an unexpected exception: log, count, answer where possible. Returns Kamailio's 1."""
    try:
        result = fn(*args)
    except Exception as exc:  # noqa: BLE001 - the barrier: anything a bug raises
        _failed[0](route, exc)
        return 1
    return 1 if result is None else result


def where(exc: BaseException, frames: int = 3) -> str:
    """The last frames of a traceback on one line: `routes.py:74 request_route < ksr_read.py:86 message`."""
    tb = traceback.extract_tb(exc.__traceback__)[-frames:]
    return " < ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in reversed(tb))


def describe(route: str, method: str, call_id: str, exc: BaseException) -> str:
    """The one log line of a failure (ASCII: whatever bytes the message or the exception hold, the log line can be
    written)."""
    line = (
        f"callmanager: {route} route failed on {method or '?'} (Call-ID {call_id[:120] or '?'}): "
        f"{type(exc).__name__}: {exc} at {where(exc)}"
    )
    return line.encode("ascii", "backslashreplace").decode("ascii")[:1000] + "\n"


def failed(route: str, exc: BaseException) -> None:
    import KSR  # here, not at the top: the pure parts of this module are unit-tested without Kamailio

    from . import ksr_read as read

    method = call_id = ""
    try:
        method, call_id = read.one("$rm"), read.one("$ci")
    except Exception:  # noqa: BLE001 - no message, or unreadable: the log line says '?'
        pass
    try:
        KSR.err(describe(route, method, call_id, exc))
    except Exception:  # noqa: BLE001
        pass
    try:
        KSR.htable.sht_inc(ERRORS, route)
    except Exception:  # noqa: BLE001
        pass
    if route == "request" and method and method != "ACK":
        try:
            answer_500(KSR)
        except Exception:  # noqa: BLE001
            pass
    elif route == "xhttp":
        try:
            KSR.xhttp.xhttp_reply(500, "Internal Server Error", "text/plain", "callmanager: internal error\n")
        except Exception:  # noqa: BLE001
            pass


_failed = [failed]  # what guard calls on an exception (a unit test puts a recorder here)


def answer_500(KSR) -> None:  # noqa: N803 - Kamailio's module, passed in
    """500 with Retry-After, unless the request was already answered, relayed, held or dropped on purpose: on its
    transaction when the route created one (a provisional reply may have gone out on it), else statelessly."""
    if _SETTLED[0]:
        return
    _SETTLED[0] = True
    KSR.hdr.append_to_reply(f"Retry-After: {RETRY_AFTER_S}\r\n")
    if KSR.pv.get("$T(id_label)") is not None:
        KSR.tm.t_reply(500, "Server Internal Error")
    else:
        KSR.sl.send_reply(500, "Server Internal Error")

"""Entry point loaded by Kamailio's app_python3 (`modparam("app_python3", "load", ...)`).

Puts the project and its venv on sys.path, then hands every KEMI callback to `kemi.shell.routes`,
each through the exception barrier (`kemi.shell.barrier.guard`): a bug costs one request, logged,
counted and answered 500 where a reply is possible — never silence.
"""

import os
import site
import sys

_ROOT = os.environ.get("CALLMANAGER_ROOT") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_VENV = os.environ.get("CALLMANAGER_VENV") or os.path.join(_ROOT, ".venv")
for _sp in (os.path.join(_VENV, "lib", f"python{sys.version_info.major}.{sys.version_info.minor}", "site-packages"),):
    if os.path.isdir(_sp):
        site.addsitedir(_sp)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from kemi.shell import routes  # noqa: E402
from kemi.shell.barrier import failed as _failed, guard  # noqa: E402


def failed(route: str, exc: Exception) -> int:
    _failed(route, exc)
    return 1


class KamailioApp:
    """app_python3 calls these methods by name; each one is a guarded delegate."""

    def child_init(self, rank):
        return routes.child_init(rank)

    def ksr_request_route(self, msg):  # the barrier inlined on the busiest route (a frame less per request)
        try:
            return routes.request_route()
        except Exception as exc:  # noqa: BLE001 - see kemi.shell.barrier
            return failed("request", exc)

    def ksr_branch_reply(self, msg):
        return guard("branch_reply", routes.branch_reply_route)

    def ksr_media_branch(self, msg):
        return guard("media_branch", routes.media_branch_route)

    def ksr_peer_reply(self, msg):
        return guard("peer_reply", routes.peer_reply_route)

    def ksr_failure_route(self, msg):
        return guard("failure", routes.failure_route)

    def ksr_dialog_event(self, msg, evname):
        return guard("dialog_event", routes.dialog_event, evname)

    def ksr_acd_timer(self, msg, evname=None):
        return guard("acd_timer", routes.acd_timer)

    def ksr_acd_resume(self, msg, evname=None):
        return guard("acd_resume", routes.acd_resume)

    def ksr_shared_timer(self, msg, evname=None):
        return guard("shared_timer", routes.shared_timer)

    def ksr_xhttp_event(self, msg, evname):
        return guard("xhttp", routes.xhttp_event)


if os.environ.get("CALLMANAGER_PROFILE"):  # `make bench ARGS=--profile` only (kemi/shell/profiling.py)
    from kemi.shell import profiling

    profiling.install(KamailioApp, os.environ["CALLMANAGER_PROFILE"])


def mod_init():
    return KamailioApp()

"""Profiling mode, for `make bench ARGS=--profile` (tests/bench/profile.py) only: CALLMANAGER_PROFILE=<directory>.

Inside each Kamailio worker it counts and times, in the worker thread's own CPU time (`time.thread_time_ns`):
- every entry point Kamailio calls (the KamailioApp methods), by what it was called for — request method and
  whether in a dialog, reply status class and method, dialog event;
- every KSR function the shell calls (each one a crossing into Kamailio), by name and by entry;
- Python's garbage collector (gc.callbacks), JSON encoding and decoding (json.dumps / json.loads) and the call
  state's codec.
Each worker writes its totals to <directory>/<pid>.json about once a second. The wrappers cost CPU themselves
(two clock reads and a Python frame per crossing): the counts are exact, the times are for shares, not for
Kamailio's CPU per call — that is measured without this mode.
Never on in production: nothing reads CALLMANAGER_PROFILE but kemi/kamailio_app.py.
"""

from __future__ import annotations

import gc
import json
import os
import threading
import time

_clock = time.thread_time_ns
_STATE: dict = {"last_dump": 0.0, "dir": ""}
_STACK: list[list] = []  # the entries running now, innermost last: [name, KSR ns, nested entries' ns]
_NESTED = [0]  # ns spent in entries that ran inside another one (a dialog event inside loose_route): not the KSR call's
ENTRIES: dict[str, list[int]] = {}  # "request INVITE initial" -> [calls, own cpu ns, of which in KSR calls]
KSR_CALLS: dict[str, list[int]] = {}  # "pv.gete" -> [calls, cpu ns]
BY_ENTRY: dict[str, dict[str, list[int]]] = {}  # entry -> KSR function -> [calls, cpu ns]
PARTS: dict[str, list[int]] = {}  # "gc gen0", "json.dumps", ... -> [calls, cpu ns]
_GC_START = [0]
_LOCAL = threading.local()
_ORIGINAL: dict = {}  # json's functions before they were wrapped


def _add(table: dict[str, list[int]], key: str, *values: int) -> None:
    row = table.get(key)
    if row is None:
        table[key] = [1, *values]
    else:
        row[0] += 1
        for i, v in enumerate(values, 1):
            row[i] += v


def _ksr_wrapper(name: str, fn):
    def counted(*args):
        t, nested = _clock(), _NESTED[0]
        try:
            return fn(*args)
        finally:
            ns = _clock() - t - (_NESTED[0] - nested)
            _add(KSR_CALLS, name, ns)
            if _STACK:
                frame = _STACK[-1]
                frame[1] += ns
                _add(BY_ENTRY.setdefault(frame[0], {}), name, ns)

    return counted


def _timed(name: str, fn):
    def timed(*args, **kwargs):
        t = _clock()
        try:
            return fn(*args, **kwargs)
        finally:
            _add(PARTS, name, _clock() - t)

    return timed


def _gc_callback(phase: str, info: dict) -> None:
    if phase == "start":
        _GC_START[0] = _clock()
    else:
        _add(PARTS, f"gc gen{info.get('generation', '?')}", _clock() - _GC_START[0])


def _wrap_ksr(ksr) -> None:
    """Every function of KSR and of its submodules (KSR.pv, KSR.tm, ...) replaced by a counting wrapper."""
    for attr in dir(ksr):
        if attr.startswith("_"):
            continue
        obj = getattr(ksr, attr)
        if callable(obj) and not isinstance(obj, type(ksr)):
            setattr(ksr, attr, _ksr_wrapper(attr, obj))
        elif isinstance(obj, type(ksr)):
            for fname in dir(obj):
                if not fname.startswith("_") and callable(getattr(obj, fname)):
                    setattr(obj, fname, _ksr_wrapper(f"{attr}.{fname}", getattr(obj, fname)))


def _entry_name(route: str, raw_get, evname) -> str:
    """What the entry was called for, read with the unwrapped KSR (not counted)."""
    try:
        if route == "ksr_request_route":
            return f"request {raw_get('$rm')} {'in-dialog' if raw_get('$tt') else 'initial'}"
        if route in ("ksr_branch_reply", "ksr_failure_route"):
            status = raw_get("$rs")
            return f"{route[4:]} {status // 100 if isinstance(status, int) else '?'}xx {raw_get('$rm')}"
        if route == "ksr_dialog_event":
            return f"dialog_event {evname}"
    except Exception:  # noqa: BLE001 - a name only
        pass
    return route[4:] if route.startswith("ksr_") else route


def _entry_wrapper(route: str, fn, raw_get):
    def entry(self, msg, *rest):
        if not getattr(_LOCAL, "seen", False):  # a new Python thread state for this call (app_python3's GIL handling)
            _LOCAL.seen = True
            _add(PARTS, "new thread state", 0)
        frame = [_entry_name(route, raw_get, rest[0] if rest else None), 0, 0]  # name, KSR ns, nested entries' ns
        _STACK.append(frame)
        t = _clock()
        try:
            return fn(self, msg, *rest)
        finally:
            ns = _clock() - t
            _STACK.pop()
            _add(ENTRIES, frame[0], ns - frame[2], frame[1])  # its own time: without the entries nested in it
            if _STACK:
                _STACK[-1][2] += ns
                _NESTED[0] += ns
            else:
                _maybe_dump()

    return entry


def _maybe_dump() -> None:
    now = time.monotonic()
    if now - _STATE["last_dump"] < 1.0:
        return
    _STATE["last_dump"] = now
    if _STATE.get("calibrated_in") != os.getpid():  # per worker, after the fork: its first dumps (cold, then warm)
        _STATE["calibration_ns"] = _STATE.get("calibration_ns", []) + [calibrate()]
        if len(_STATE["calibration_ns"]) == 3:
            _STATE["calibrated_in"] = os.getpid()
        if os.environ.get("CALLMANAGER_PROFILE_FUNCTIONS"):  # every Python function, deterministic (slow: shares only)
            import cProfile

            _STATE["cprofile"] = cProfile.Profile(_clock, 1e-9)
            _STATE["cprofile"].enable()
    path = os.path.join(_STATE["dir"], f"{os.getpid()}.json")
    doc = {
        "pid": os.getpid(),
        "calibration_ns": _STATE.get("calibration_ns"),
        "entries": ENTRIES,
        "ksr": KSR_CALLS,
        "by_entry": BY_ENTRY,
        "parts": PARTS,
    }
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(doc, fh)
    os.replace(tmp, path)
    if _STATE.get("cprofile") is not None:
        _STATE["cprofile"].dump_stats(os.path.join(_STATE["dir"], f"{os.getpid()}.prof"))


def calibrate() -> int:
    """CPU ns of a fixed piece of pure Python (JSON round trips and a loop): the same figure outside Kamailio
    tells whether the embedded interpreter itself runs slower."""
    doc = {"t": "CallState", "f": [["CallRecord", "a" * 40, 1, 2, "200", "x.example", [1, 2, 3]], [], 3.5]}
    dumps, loads = _ORIGINAL.get("dumps", json.dumps), _ORIGINAL.get("loads", json.loads)  # not the timed wrappers
    t = _clock()
    for _ in range(2000):
        loads(dumps(doc))
    total = 0
    for i in range(20000):
        total += i % 7
    return _clock() - t


def install(app_class, directory: str) -> None:
    """Wrap KSR, the app's entry points, JSON and the call state codec; start counting GC."""
    import KSR

    from kemi.policy.callstate import CallState

    _STATE["dir"] = directory
    os.makedirs(directory, exist_ok=True)
    raw_get = KSR.pv.get
    _wrap_ksr(KSR)
    for route in [m for m in vars(app_class) if m.startswith("ksr_")]:
        setattr(app_class, route, _entry_wrapper(route, getattr(app_class, route), raw_get))
    _ORIGINAL.update(dumps=json.dumps, loads=json.loads)
    json.dumps = _timed("json.dumps", json.dumps)
    json.loads = _timed("json.loads", json.loads)
    setattr(CallState, "to_json", _timed("CallState.to_json", CallState.to_json))  # noqa: B010 - a method replaced
    setattr(CallState, "from_json", staticmethod(_timed("CallState.from_json", CallState.from_json)))  # noqa: B010
    gc.callbacks.append(_gc_callback)

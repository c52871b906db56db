"""A stand-in for Kamailio's `KSR` module, for fast unit tests of the KEMI shell (in the spirit of Kamailio's own
kemi_mock): pseudo-variables, AVPs, dialog variables and htables are kept in dictionaries, `$_s(...)` formats are
printed from them, and every other function is recorded in `calls` and answers what the test set in `returns`
(1 by default). It knows nothing of SIP: a scenario test with the real Kamailio stays the judge of the whole path.

    ksr = FakeKSR(); ksr.install()   # sys.modules["KSR"] = ksr; the shell modules imported afterwards use it
    ksr.pv_values["$T_reply_code"] = 486
    ksr.returns["tm.t_relay"] = -1  # the next relays fail
    assert ("tm.t_relay", ()) in ksr.calls
"""
from __future__ import annotations

import re
import sys
from typing import Any

_SHT = re.compile(r"^\$sht\(([^=]+)=>(.*)\)$")
_SHTINC = re.compile(r"^\$shtinc\(([^=]+)=>(.*)\)$")
_NAMED = re.compile(r"^\$(avp|dlg_var|var|hdr)\((.*)\)$")


class _Module:
    def __init__(self, ksr: FakeKSR, name: str) -> None:
        self._ksr, self._name = ksr, name

    def __getattr__(self, fn: str):
        def call(*args):
            return self._ksr.called(f"{self._name}.{fn}", args)
        return call


class _PV:
    def __init__(self, ksr: FakeKSR) -> None:
        self._ksr = ksr

    def get(self, name: str):
        return self._ksr.value(name)

    gete = get

    def sets(self, name: str, value: str) -> None:
        self._ksr.assign(name, str(value))

    def seti(self, name: str, value: int) -> None:
        self._ksr.assign(name, int(value))

    def unset(self, name: str) -> None:
        self._ksr.assign(name, None)


class _Htable:
    def __init__(self, ksr: FakeKSR) -> None:
        self._ksr = ksr
        self._iterators: dict[str, list] = {}

    def _t(self, table: str) -> dict:
        return self._ksr.htables.setdefault(table, {})

    def sht_get(self, table, key):
        return self._t(table).get(key)

    def sht_sets(self, table, key, value):
        self._t(table)[key] = str(value)
        return 1

    def sht_seti(self, table, key, value):
        self._t(table)[key] = int(value)
        return 1

    def sht_inc(self, table, key):
        t = self._t(table)
        t[key] = int(t.get(key) or 0) + 1
        return t[key]

    def sht_dec(self, table, key):
        t = self._t(table)
        t[key] = int(t.get(key) or 0) - 1
        return t[key]

    def sht_rm(self, table, key):
        return 1 if self._t(table).pop(key, None) is not None else -1

    def sht_iterator_start(self, name, table):
        self._iterators[name] = list(self._t(table).items())
        self._ksr.iterating[name] = None
        return 1

    def sht_iterator_next(self, name):
        items = self._iterators.get(name) or []
        if not items:
            return -1
        self._ksr.iterating[name] = items.pop(0)
        return 1

    def sht_iterator_end(self, name):
        self._iterators.pop(name, None)
        return 1


class FakeKSR:
    def __init__(self) -> None:
        self.pv_values: dict[str, Any] = {}  # "$rm", "$T_reply_code", "$avp(x)", "$dlg_var(x)", "$hdr(X)"...
        self.htables: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, tuple]] = []
        self.returns: dict[str, Any] = {}  # "tm.t_relay" -> its return code (a list: one per call, in order)
        self.flags: set[int] = set()
        self.iterating: dict[str, tuple | None] = {}
        self.pv = _PV(self)
        self.htable = _Htable(self)

    # ------------------------------------------------ the module's surface
    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return _Module(self, name)

    def setflag(self, flag):
        self.flags.add(flag)
        return 1

    def isflagset(self, flag):
        return flag in self.flags

    def setbflag(self, flag):
        self.calls.append(("setbflag", (flag,)))
        return 1

    def force_rport(self):
        return 1

    def is_myself_ruri(self):
        return self.called("is_myself_ruri", ())

    def info(self, line):
        self.calls.append(("info", (line,)))

    def notice(self, line):
        self.calls.append(("notice", (line,)))

    def warn(self, line):
        self.calls.append(("warn", (line,)))

    def err(self, line):
        self.calls.append(("err", (line,)))

    def set_drop(self):
        self.calls.append(("set_drop", ()))

    # ------------------------------------------------ state
    def called(self, name: str, args: tuple):
        self.calls.append((name, args))
        answer = self.returns.get(name, 1)
        if isinstance(answer, list):
            return answer.pop(0) if len(answer) > 1 else answer[0]
        return answer

    def value(self, name: str):
        if name.startswith("$_s(") and name.endswith(")"):
            return "".join(self._print(name[4:-1]))
        m = _SHTINC.match(name)
        if m:
            return self.htable.sht_inc(m.group(1), self._key(m.group(2)))
        m = _SHT.match(name)
        if m:
            return self.htables.get(m.group(1), {}).get(self._key(m.group(2)))
        if name.startswith("$(") and name.endswith("{s.tolower})"):  # the one transformation the shell prints
            value = self.value("$" + name[2 : name.index("{")])
            return None if value is None else str(value).lower()
        if name.startswith("$shtitkey(") or name.startswith("$shtitval("):
            item = self.iterating.get(name[10:-1])
            return None if item is None else item[0 if name.startswith("$shtitkey(") else 1]
        return self.pv_values.get(name)

    def _key(self, key: str) -> str:
        """An htable key as Kamailio expands it: the pseudo-variables in it printed (`r:$si:5`)."""
        return "".join(self._print(key)) if "$" in key else key

    def _print(self, fmt: str):
        """A `$_s` format: every `$name`, `$name(...)` printed from the state ('<null>' when absent)."""
        i = 0
        while i < len(fmt):
            if fmt[i] == "$":
                j = i + 1
                while j < len(fmt) and (fmt[j].isalnum() or fmt[j] == "_"):
                    j += 1
                if j < len(fmt) and fmt[j] == "(":
                    depth, k = 0, j
                    while k < len(fmt):
                        depth += fmt[k] == "("
                        depth -= fmt[k] == ")"
                        if depth == 0:
                            break
                        k += 1
                    j = k + 1
                value = self.value(fmt[i:j])
                yield "<null>" if value is None else str(value)
                i = j
            else:
                yield fmt[i]
                i += 1

    def assign(self, name: str, value) -> None:
        if value is None:
            self.pv_values.pop(name, None)
        else:
            self.pv_values[name] = value

    def avp(self, name: str):
        return self.pv_values.get(f"$avp({name})")

    def dlg_var(self, name: str):
        return self.pv_values.get(f"$dlg_var({name})")

    def names(self) -> list[str]:
        """The functions called so far, in order (`tm.t_relay`, `sl.send_reply`, ...)."""
        return [name for name, _ in self.calls]

    def reset(self) -> FakeKSR:
        """Forget everything (between tests: the shell modules keep the one instance they imported)."""
        self.pv_values.clear()
        self.htables.clear()
        self.calls.clear()
        self.returns.clear()
        self.flags.clear()
        self.iterating.clear()
        return self

    def install(self) -> FakeKSR:
        """Make this the `KSR` every module imports from now on (once per test process: see `shared`)."""
        sys.modules["KSR"] = self  # type: ignore[assignment]
        return self


def shared() -> FakeKSR:
    """The process's fake KSR, installed on first use (modules bind `KSR` when they are first imported)."""
    current = sys.modules.get("KSR")
    if isinstance(current, FakeKSR):
        return current.reset()
    return FakeKSR().install()

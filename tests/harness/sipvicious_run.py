"""Run a SIPVicious tool (svwar, svcrack) from a chosen loopback address, optionally disguised.

`python -m tests.harness.sipvicious_run <tool> <bind ip> <user agent|-> <tool args...>`

SIPVicious 0.3.8 takes `-b` but never hands it to its scanner classes (it binds to every
address and so sends from 127.0.0.1, which the test nodes exempt), and it always says
`User-Agent: friendly-scanner`. Both are set here by wrapping the classes, so a test can run
the real tool from an address of its own, as itself or under a phone's name.
"""
from __future__ import annotations

import importlib
import sys

CLASSES = {"svwar": "TakeASip", "svcrack": "ASipOfRedWine"}


def main() -> None:
    tool, bind, agent, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    module = importlib.import_module(f"sipvicious.{tool}")
    cls = getattr(module, CLASSES[tool])
    original = cls.__init__

    def init(self, *a, **kw):
        kw["bindingip"] = bind
        original(self, *a, **kw)

    cls.__init__ = init
    if agent != "-":
        from sipvicious.libs import svhelper

        defaults = list(svhelper.makeRequest.__defaults__)
        defaults[defaults.index("friendly-scanner")] = agent
        svhelper.makeRequest.__defaults__ = tuple(defaults)
    sys.argv = [f"sipvicious_{tool}", *args]
    module.main()


if __name__ == "__main__":
    main()

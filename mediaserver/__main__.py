"""`python -m mediaserver --address 127.0.0.1 --port 5062 --prompts mediaserver/prompts`: run the media server until
SIGTERM (the node runner starts it next to Kamailio)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

PROMPTS = Path(__file__).resolve().parent / "prompts"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mediaserver")
    ap.add_argument("--address", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5062)
    ap.add_argument("--prompts", type=Path, default=PROMPTS, help="<dir>/<language>/<prompt>.wav")
    ap.add_argument("--lead-ms", type=int, default=0, help="silence before a prompt (AUD-09)")
    ap.add_argument("--max-calls", type=int, default=500)
    ap.add_argument("--voicemail-spool", type=Path, default=None, help="recorded messages go here (<dir>/new)")
    ap.add_argument(
        "--voicemail-store", type=Path, default=None, help="the control plane's voicemail store (greetings, mailboxes)"
    )
    ap.add_argument(
        "--workers", type=int, default=1, help="processes on port .. port+workers-1 (mediaserver/workers.py)"
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.workers > 1:
        from . import workers

        base = ["--address", args.address, "--prompts", str(args.prompts), "--lead-ms", str(args.lead_ms)]
        base += ["--max-calls", str(args.max_calls)]
        base += ["--voicemail-spool", str(args.voicemail_spool)] if args.voicemail_spool else []
        base += ["--voicemail-store", str(args.voicemail_store)] if args.voicemail_store else []
        return workers.run(lambda i: workers.worker_argv(base, args.port + i), args.workers, args.address, args.port)
    from .server import MediaServer

    server = MediaServer(
        args.address, args.port, args.prompts, args.lead_ms, args.max_calls, args.voicemail_spool, args.voicemail_store
    )
    server.start()
    try:
        server.run()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

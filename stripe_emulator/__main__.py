"""``python -m stripe_emulator --host 127.0.0.1 --port 12111``"""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from .app import Emulator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="stripe_emulator", description="An offline Stripe on loopback.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--snapshot", help="load state from this file at start and save it at exit")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(message)s")
    emulator = Emulator(args.host, args.port, snapshot=args.snapshot).start()
    print(f"stripe_emulator listening on {emulator.url} (API version 2026-10-28.endive)", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    emulator.stop()


if __name__ == "__main__":
    main()

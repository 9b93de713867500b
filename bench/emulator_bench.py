"""Benchmark the Stripe emulator through the official ``stripe`` client.

Run with ``make bench`` (or ``.venv/bin/python bench/emulator_bench.py --help``).  By default it
starts its own emulator (``python -m stripe_emulator --host 127.0.0.1 --port <free port>``) in a
subprocess, so every run begins from an empty state; ``--url`` benchmarks one already running.

Two measurements:

(a) Request throughput for a mixed workload.  One *iteration* is five API requests, in order:

      1. POST /v1/customers                          create (email, name, metadata)
      2. GET  /v1/customers/{id}                     retrieve
      3. POST /v1/payment_methods/pm_card_visa/attach attach a test card to the customer
      4. POST /v1/customers/{id}                     update metadata and
                                                     invoice_settings.default_payment_method
      5. POST /v1/subscriptions                      monthly subscription to a price created
                                                     beforehand (charges the first invoice)

    ``--ops`` requests (default 2,000 = 400 iterations) run once from a single client and once
    split evenly over ``--threads`` threads (default 4), each thread with its own client.  Every
    request is one operation; requests/second = operations / wall time.

(b) Test-clock advancement.  A test clock frozen at "now", ``--subscriptions`` customers
    (default 1,000) on that clock, each with pm_card_visa attached and set as
    invoice_settings.default_payment_method and a monthly ``billing_mode=flexible`` subscription.
    Then POST /v1/test_helpers/test_clocks/{id}/advance to frozen_time + 31 days and poll
    GET /v1/test_helpers/test_clocks/{id} until status == "ready".  Reported: advance -> ready
    wall time, plus the invoices (listed afterwards) by billing_reason and status.

Prints a table and writes ``bench/results/latest.json``.  Never part of ``make test``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import pathlib
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import stripe

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "latest.json"
API_KEY = "sk_test_emulator_bench"
OPS_PER_ITERATION = 5
DAY = 24 * 60 * 60


# --------------------------------------------------------------------------- emulator process


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_serving(url: str, proc: subprocess.Popen[bytes] | None, timeout: float = 30.0) -> None:
    """Any HTTP answer (even 401/404) means the server is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"emulator exited with status {proc.returncode} before serving")
        try:
            urllib.request.urlopen(url + "/_emulator/health", timeout=1).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"emulator did not answer on {url} within {timeout:.0f}s")


@contextlib.contextmanager
def emulator_process() -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stripe_emulator", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            try:
                wait_until_serving(url, proc)
            except RuntimeError:
                log.seek(0)
                sys.stderr.write(log.read().decode(errors="replace"))
                raise
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def make_client(url: str) -> stripe.StripeClient:
    return stripe.StripeClient(
        API_KEY,
        base_addresses={"api": url},
        stripe_version=stripe.api_version,
        max_network_retries=0,
    )


# --------------------------------------------------------------------------- timing helpers


@dataclass
class Timings:
    """Per-operation latencies (seconds) and errors, safe to share between threads."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def timed(self, name: str, call: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        result = call()
        elapsed = time.perf_counter() - start
        with self.lock:
            self.latencies[name].append(elapsed)
        return result

    def error(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        for name, values in self.latencies.items():
            ordered = sorted(values)
            out[name] = {
                "count": len(ordered),
                "p50_ms": round(1000 * statistics.median(ordered), 2),
                "p95_ms": round(1000 * ordered[max(0, int(len(ordered) * 0.95) - 1)], 2),
                "max_ms": round(1000 * ordered[-1], 2),
            }
        return out


def describe(exc: BaseException) -> str:
    if isinstance(exc, stripe.StripeError):
        return f"{type(exc).__name__} (HTTP {exc.http_status}): {exc.user_message or exc}"
    return f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------- (a) mixed workload


def create_price(client: stripe.StripeClient, amount: int = 1500) -> str:
    product = client.v1.products.create(params={"name": "Bench plan"})
    price = client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "usd",
            "unit_amount": amount,
            "recurring": {"interval": "month"},
        }
    )
    return price.id


def mixed_iteration(client: stripe.StripeClient, price_id: str, n: int, timings: Timings) -> None:
    customer = timings.timed(
        "customers.create",
        lambda: client.v1.customers.create(
            params={"email": f"bench{n}@example.com", "name": f"Bench {n}", "metadata": {"n": str(n)}}
        ),
    )
    timings.timed("customers.retrieve", lambda: client.v1.customers.retrieve(customer.id))
    payment_method = timings.timed(
        "payment_methods.attach",
        lambda: client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id}),
    )
    timings.timed(
        "customers.update",
        lambda: client.v1.customers.update(
            customer.id,
            params={
                "metadata": {"n": str(n), "updated": "yes"},
                "invoice_settings": {"default_payment_method": payment_method.id},
            },
        ),
    )
    timings.timed(
        "subscriptions.create",
        lambda: client.v1.subscriptions.create(
            params={"customer": customer.id, "items": [{"price": price_id}]}
        ),
    )


def run_mixed(url: str, price_id: str, ops: int, threads: int) -> dict[str, Any]:
    iterations = ops // OPS_PER_ITERATION
    timings = Timings()
    clients = [make_client(url) for _ in range(threads)]

    def worker(index: int) -> None:
        client = clients[index]
        for n in range(index, iterations, threads):
            try:
                mixed_iteration(client, price_id, n, timings)
            except Exception as exc:
                timings.error(describe(exc))

    start = time.perf_counter()
    if threads == 1:
        worker(0)
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(worker, range(threads)))
    elapsed = time.perf_counter() - start
    done = sum(len(v) for v in timings.latencies.values())
    return {
        "threads": threads,
        "iterations": iterations,
        "operations": done,
        "seconds": round(elapsed, 3),
        "requests_per_second": round(done / elapsed, 1) if elapsed else None,
        "errors": len(timings.errors),
        "first_errors": timings.errors[:5],
        "latency": timings.summary(),
    }


# --------------------------------------------------------------------------- (b) test clock


def setup_clock_customer(client: stripe.StripeClient, clock_id: str, price_id: str, n: int) -> str:
    customer = client.v1.customers.create(
        params={"email": f"clock{n}@example.com", "test_clock": clock_id, "metadata": {"n": str(n)}}
    )
    payment_method = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    client.v1.customers.update(
        customer.id, params={"invoice_settings": {"default_payment_method": payment_method.id}}
    )
    client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": price_id}],
            "billing_mode": {"type": "flexible"},
        }
    )
    return customer.id


def run_clock(url: str, price_id: str, subscriptions: int, threads: int, timeout: float) -> dict[str, Any]:
    client = make_client(url)
    frozen = int(time.time())
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": frozen, "name": "bench"})

    errors: list[str] = []
    customers: set[str] = set()
    clients = [make_client(url) for _ in range(threads)]

    def worker(index: int) -> None:
        for n in range(index, subscriptions, threads):
            try:
                customers.add(setup_clock_customer(clients[index], clock.id, price_id, n))
            except Exception as exc:
                errors.append(describe(exc))

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(worker, range(threads)))
    setup_seconds = time.perf_counter() - start
    if errors:
        return {"subscriptions": subscriptions, "setup_errors": len(errors), "first_errors": errors[:5]}

    target = frozen + 31 * DAY
    polls = 0
    start = time.perf_counter()
    advanced = client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": target})
    status = advanced.status
    while status != "ready":
        if status == "internal_failure":
            raise RuntimeError("test clock advancement ended in internal_failure")
        if time.perf_counter() - start > timeout:
            raise RuntimeError(f"test clock still {status!r} after {timeout:.0f}s")
        time.sleep(0.02)
        polls += 1
        status = client.v1.test_helpers.test_clocks.retrieve(clock.id).status
    advance_seconds = time.perf_counter() - start

    # Only the clock's customers count (with --url, or after the mixed runs, there are others).
    by_kind: collections.Counter[str] = collections.Counter()
    for invoice in client.v1.invoices.list(params={"limit": 100}).auto_paging_iter():
        if invoice.customer in customers:
            by_kind[f"{invoice.billing_reason}/{invoice.status}"] += 1
    paid = sum(count for kind, count in by_kind.items() if kind.endswith("/paid"))
    cycle_paid = by_kind.get("subscription_cycle/paid", 0)
    return {
        "subscriptions": subscriptions,
        "setup_seconds": round(setup_seconds, 3),
        "setup_threads": threads,
        "advance_days": 31,
        "advance_to_ready_seconds": round(advance_seconds, 3),
        "polls": polls,
        "invoices": dict(sorted(by_kind.items())),
        "invoices_paid": paid,
        "renewal_invoices_paid": cycle_paid,
    }


# --------------------------------------------------------------------------- report


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def print_table(results: dict[str, Any]) -> None:
    print()
    print(f"Stripe emulator benchmark  (stripe {stripe.VERSION}, API {stripe.api_version})")
    print()
    mixed = results.get("mixed", [])
    if mixed:
        print(f"{'mixed workload':<28}{'ops':>8}{'seconds':>10}{'req/s':>10}{'errors':>8}")
        for run in mixed:
            label = f"{run['threads']} thread" + ("s" if run["threads"] > 1 else "")
            rps = run["requests_per_second"]
            print(
                f"{label:<28}{run['operations']:>8}{run['seconds']:>10.2f}"
                f"{(f'{rps:.0f}' if rps else '-'):>10}{run['errors']:>8}"
            )
        print()
        print(f"{'latency (1 thread)':<28}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}")
        for name, lat in mixed[0]["latency"].items():
            print(f"{name:<28}{lat['p50_ms']:>10.2f}{lat['p95_ms']:>10.2f}{lat['max_ms']:>10.2f}")
        for run in mixed:
            for message in run["first_errors"]:
                print(f"  error ({run['threads']} threads): {message}")
        print()
    clock = results.get("test_clock")
    if clock:
        if "setup_errors" in clock:
            print(f"test clock: setup failed ({clock['setup_errors']} errors)")
            for message in clock["first_errors"]:
                print(f"  error: {message}")
        else:
            print(f"test clock, {clock['subscriptions']} subscriptions (billing_mode=flexible)")
            setup = f"setup, {clock['setup_threads']} threads (s)"
            print(f"  {setup:<36}{clock['setup_seconds']:>10.2f}")
            print(f"  {'advance +31 days -> ready (s)':<36}{clock['advance_to_ready_seconds']:>10.2f}")
            print(f"  {'status polls':<36}{clock['polls']:>10}")
            print(f"  {'invoices paid':<36}{clock['invoices_paid']:>10}")
            print(f"  {'  of which renewals':<36}{clock['renewal_invoices_paid']:>10}")
            print("  invoices by billing_reason/status:")
            for kind, count in clock["invoices"].items():
                print(f"    {kind:<34}{count:>10}")
        print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=2000, help="requests per mixed run (default 2000)")
    parser.add_argument("--threads", type=int, default=4, help="threads for the concurrent run (default 4)")
    parser.add_argument("--subscriptions", type=int, default=1000, help="subscriptions on the test clock")
    parser.add_argument("--clock-timeout", type=float, default=900, help="seconds to wait for 'ready'")
    parser.add_argument("--skip-mixed", action="store_true", help="skip the mixed workload")
    parser.add_argument("--skip-clock", action="store_true", help="skip the test-clock measurement")
    parser.add_argument("--url", help="use an already running emulator instead of starting one")
    parser.add_argument("--output", type=pathlib.Path, default=RESULTS, help=f"default {RESULTS}")
    args = parser.parse_args(argv)

    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": git_commit(),
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "stripe_python": stripe.VERSION,
        "api_version": stripe.api_version,
        "emulator": args.url or "subprocess: python -m stripe_emulator",
        "parameters": {
            "ops": args.ops,
            "threads": args.threads,
            "subscriptions": args.subscriptions,
            "mixed_iteration": [
                "customers.create",
                "customers.retrieve",
                "payment_methods.attach(pm_card_visa)",
                "customers.update(metadata, invoice_settings.default_payment_method)",
                "subscriptions.create(monthly price)",
            ],
        },
    }

    with contextlib.ExitStack() as stack:
        url = args.url.rstrip("/") if args.url else stack.enter_context(emulator_process())
        if args.url:
            wait_until_serving(url, None, timeout=5)
        price_id = create_price(make_client(url))
        if not args.skip_mixed:
            results["mixed"] = [
                run_mixed(url, price_id, args.ops, 1),
                run_mixed(url, price_id, args.ops, args.threads),
            ]
        if not args.skip_clock:
            results["test_clock"] = run_clock(
                url, price_id, args.subscriptions, args.threads, args.clock_timeout
            )

    print_table(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")

    failed = any(run["errors"] for run in results.get("mixed", [])) or "setup_errors" in results.get(
        "test_clock", {}
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

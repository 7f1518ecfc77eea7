"""python -m integration_tests.klaviyo_sim --port 8765 --events 100000 [options]: serve until interrupted.

Every field of Sizes (record counts, shares such as --member-share 0.2) and of Faults is an option.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from dataclasses import fields

from integration_tests.klaviyo_sim.data import Dataset, Sizes, parse_now
from integration_tests.klaviyo_sim.server import FULL_ACCESS_KEY, Faults, Simulator


def _kind(item) -> type:
    """A dataclass field's type (the annotations are strings under `from __future__ import annotations`)."""
    return (
        item.type if isinstance(item.type, type) else {"float": float, "bool": bool, "int": int, "str": str}[item.type]
    )


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m integration_tests.klaviyo_sim", description="A local Klaviyo API for tests and demos."
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=1, help="same seed, same data")
    parser.add_argument("--now", help="pin 'now' (YYYY-MM-DDTHH:MM:SSZ); data is generated relative to it")
    parser.add_argument(
        "--prerender",
        action="store_true",
        help="render every event before serving (benchmarks: pages as fast as Klaviyo serves them)",
    )
    parser.add_argument(
        "--hold-back-minutes", type=int, default=0, help="hide records newer than this until POST /__sim/reveal"
    )
    for item in fields(Sizes):
        parser.add_argument(
            f"--{item.name.replace('_', '-')}", type=_kind(item), default=item.default, help=f"default {item.default}"
        )
    for item in fields(Faults):
        kind = _kind(item)
        if kind is bool:
            parser.add_argument(f"--{item.name.replace('_', '-')}", action="store_true")
        else:
            parser.add_argument(
                f"--{item.name.replace('_', '-')}", type=kind, default=item.default, help=f"default {item.default}"
            )
    return parser.parse_args()


async def serve(args: argparse.Namespace) -> None:
    sizes = Sizes(**{item.name: getattr(args, item.name) for item in fields(Sizes)})
    dataset = Dataset(seed=args.seed, now=parse_now(args.now), sizes=sizes)
    dataset.hold_back(args.hold_back_minutes * 60)
    simulator = Simulator(dataset, Faults(**{item.name: getattr(args, item.name) for item in fields(Faults)}))
    server = await simulator.start(args.host, args.port)
    if args.prerender:
        simulator.prerender_events()
    print(f"Klaviyo simulator on {simulator.url} (key {FULL_ACCESS_KEY}); Ctrl-C stops it", flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    await stop.wait()
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(serve(arguments()))

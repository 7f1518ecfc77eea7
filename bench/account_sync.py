"""How long a full sync of an account takes at Klaviyo's own rate limits, stream by stream.

    .venv/bin/python bench/account_sync.py default     # a first sync with only a key: 1M events a month, 100k profiles
    .venv/bin/python bench/account_sync.py related     # the per-parent and newer streams: 200 flows, 2,000 campaigns
    .venv/bin/python bench/account_sync.py default --share 0.5 --other-client 0.5
                                                       # half of every window, another app using the other half

The simulator runs in its own process with Klaviyo's real rate limits (each endpoint's
burst and steady windows); the connector reads every stream of the scenario at once, as
a new connection with every stream selected does, with default settings (`--share` sets
its `rate_limit_share`). `--other-client` runs another client of the account in the
simulator, using that share of every window (see klaviyo_sim's README). For each stream:
records and the seconds from the read's start until the stream's COMPLETE status; in all,
the requests the simulator answered, the connector's 429s and the other client's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from integration_tests.connector_cli import CONNECTOR, configured_catalog, discovered_catalog, parse_lines  # noqa: E402
from integration_tests.klaviyo_sim import FULL_ACCESS_KEY  # noqa: E402

SCENARIOS = {
    # An account with 1M events a month and 100k profiles (two years of them), the rest at the simulator's sizes.
    "default": (["--events", "1000000", "--event-days", "30", "--profiles", "100000", "--history-days", "730"], None),
    "related": (
        ["--flows", "200", "--campaigns", "2000", "--events", "1000", "--profiles", "2000"],
        [
            "campaigns_push",
            "campaign_messages",
            "flow_actions",
            "flow_messages",
            "tags",
            "tag_groups",
            "list_memberships",
            "segment_memberships",
            "global_exclusions",
            "list_exclusions",
            "coupons",
            "coupon_codes",
            "forms",
            "catalog_items",
            "catalog_variants",
            "catalog_categories",
        ],
    ),
}


def main(name: str, share: float | None, other_client: float) -> None:
    simulator_args, streams = SCENARIOS[name]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "integration_tests.klaviyo_sim",
            "--port",
            "0",
            *simulator_args,
            "--competing-share",
            str(other_client),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    url = process.stdout.readline().split(" on ", 1)[1].split(" ", 1)[0]
    try:
        with tempfile.TemporaryDirectory() as folder:
            config = {"api_key": FULL_ACCESS_KEY, "api_url": url}
            if share is not None:
                config["rate_limit_share"] = share
            catalog = configured_catalog(discovered_catalog(Path(folder), config), streams)
            (Path(folder) / "config.json").write_text(json.dumps(config))
            (Path(folder) / "catalog.json").write_text(json.dumps(catalog))
            command = [CONNECTOR, "read", "--config", f"{folder}/config.json", "--catalog", f"{folder}/catalog.json"]
            records, done, started = Counter(), {}, time.monotonic()
            connector = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
            for message in parse_lines(connector.stdout):
                if message["type"] == "RECORD":
                    records[message["record"]["stream"]] += 1
                elif message["type"] == "TRACE" and message["trace"]["type"] == "STREAM_STATUS":
                    status = message["trace"]["stream_status"]
                    if status["status"] == "COMPLETE":
                        done[status["stream_descriptor"]["name"]] = time.monotonic() - started
            if connector.wait():
                sys.exit(f"the connector exited with status {connector.returncode}")
            total = time.monotonic() - started
        stats = json.loads(urllib.request.urlopen(f"{url}/__sim/stats").read())
    finally:
        process.terminate()
        process.wait(10)
    setting = f"rate_limit_share {share}" if share is not None else "default settings"
    print(f"scenario {name}: {' '.join(simulator_args)}, other client {other_client}; {setting}")
    print(f"all streams done in {total:.0f} s")
    print(
        f"requests {stats.get('requests', 0):,}, 429s {stats.get('throttled', 0)}, "
        f"the other client's 429s {stats.get('competitor_429', 0)}\n"
    )
    print("| stream | records | done after (s) |\n|---|---|---|")
    for stream in sorted(done, key=done.get):
        print(f"| {stream} | {records[stream]:,} | {done[stream]:.0f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", nargs="?", default="default", choices=sorted(SCENARIOS))
    parser.add_argument("--share", type=float, help="the connector's rate_limit_share (default: not set, 1.0)")
    parser.add_argument("--other-client", type=float, default=0.0, help="another client's share of every window")
    arguments = parser.parse_args()
    main(arguments.scenario, arguments.share, arguments.other_client)

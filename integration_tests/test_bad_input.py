"""Bad input ends in one clear error (or a documented reset with a warning), never a traceback.

The config is fuzzed with hypothesis, in process (a command on a bad config costs milliseconds);
the input files are broken by hand and run through the CLI. Rows go to docs/RELIABILITY.md.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone
from typing import Any

import pytest
from airbyte_cdk.utils.airbyte_secrets_utils import update_secrets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integration_tests.conftest import NOW
from integration_tests.connector_cli import configured_catalog, discovered_catalog, parse_lines, run_connector
from integration_tests.expectations import all_history_config
from integration_tests.klaviyo_sim import Dataset, Faults, Simulator, Sizes
from source_klaviyo import source as source_module
from source_klaviyo.clock import parse_klaviyo_datetime
from source_klaviyo.config import OFFICIAL_SETTINGS, BackfillWindows
from source_klaviyo.rate_limits import KlaviyoAPIBudget
from source_klaviyo.run import run
from source_klaviyo.source import SourceKlaviyo

FIELDS = sorted(SourceKlaviyo().spec(None).connectionSpecification["properties"])
# What the fuzz changes: every field but the simulator's URL, and the official connector's settings, read as ours.
FUZZED = [*(field for field in FIELDS if field != "api_url"), *OFFICIAL_SETTINGS]
# The CDK's words when an exception escapes a connector: never what a user should get for bad input.
UNHANDLED = "Something went wrong in the connector"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=8,
)
near_misses = st.sampled_from(
    [
        "",
        " ",
        "pk_",
        "pk_ 123",
        "sk_0123456789abcdef",
        "2024-01-31T00:00:00Z",
        "2024-01-31",
        "2024-02-30T00:00:00Z",
        "2099-01-01T00:00:00Z",
        "2024-01-31T00:00:00.123Z",
        "2023-10-15",
        "2026-07-15",
        "http://127.0.0.1:1",
        "https://a.klaviyo.com",
        "https://klaviyo.com.evil.example",
        "ftp://localhost",
        "{",
        '{"data": {"type": "metric-aggregate"}}',
        "-1",
        "0",
        "1e9",
    ]
)
numbers = st.integers(-10, 10_000) | st.sampled_from([0, 1, 50, 51, 3600, 3601, 2**63])
values = json_values | near_misses | numbers
nested = {
    "backfill_window_days": st.dictionaries(st.sampled_from(["events", "lists", "nope"]), values, max_size=3),
    "events_custom_dates": st.dictionaries(st.sampled_from(["start", "end", "other"]), values, max_size=3),
    "metric_aggregates": st.dictionaries(st.sampled_from(["data", "type", "attributes"]), json_values, max_size=2),
}


@st.composite
def configs(draw, base: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """A valid config with some fields replaced, nested fields broken, fields removed; or any JSON object."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.dictionaries(st.sampled_from([*fields, "extra"]) | st.text(max_size=10), values, max_size=5))
    config = dict(base)
    for field in draw(st.lists(st.sampled_from(fields), max_size=3, unique=True)):
        config[field] = draw(nested[field] if field in nested and draw(st.booleans()) else values)
    for field in draw(st.lists(st.sampled_from(fields), max_size=2, unique=True)):
        config.pop(field, None)
    return config


def run_in_process(
    capfd, command: str, config: dict[str, Any], folder, **files: Any
) -> tuple[int, list[dict[str, Any]], str]:
    """(exit code, stdout messages, all output) of `source-klaviyo <command> --config ... [--catalog/--state ...]`
    in this process."""
    args = []
    for name, content in {"config": config, **files}.items():
        path = folder / f"{name}.json"
        path.write_text(json.dumps(content))
        args += [f"--{name}", str(path)]
    update_secrets([])  # each example starts as a fresh process would
    capfd.readouterr()
    code = 0
    try:
        run([command, *args])
    except SystemExit as exit_:
        code = exit_.code or 0
    out, err = capfd.readouterr()
    return code, list(parse_lines(out.splitlines())), out + err


def config_error(messages: list[dict[str, Any]]) -> str | None:
    """The message of the one config error among `messages` (None: no error); any other error fails the test."""
    errors = [m["trace"]["error"] for m in messages if m["type"] == "TRACE" and m["trace"]["type"] == "ERROR"]
    assert len(errors) <= 1, errors
    if not errors:
        return None
    assert errors[0]["failure_type"] == "config_error", errors[0]
    return errors[0]["message"]


def assert_human(message: str | None) -> None:
    assert message and len(message) > 20 and UNHANDLED not in message, message


def report_fuzz(reliability_report, command: str, outcomes: Counter[str], expected: str, what: str = "config") -> None:
    reliability_report(
        {
            "scenario": f"{what} fuzz (hypothesis): {command} on {sum(outcomes.values())} {what}s",
            "expected": expected,
            "result": ", ".join(f"{count} {kind}" for kind, count in sorted(outcomes.items())) + ", 0 tracebacks",
        }
    )


def fuzz(derandomize: bool) -> settings:
    """150 examples the same on every run, or 100 new ones (hypothesis prints the seed of a failure)."""
    return settings(
        max_examples=150 if derandomize else 100,
        deadline=None,
        derandomize=derandomize,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# Values that crashed or were bent once: an overflowing window, year one, bools and strings read as numbers.
KNOWN_CASES = [
    {"backfill_window_days": {"events": 1_000_000}},
    {"start_date": "0001-01-01T00:00:00Z", "backfill_window_days": {"events": 0}},
    {"num_workers": True},
    {"num_workers": "5"},
    {"profiles_predictive_analytics": "true"},
    {"profiles_predictive_analytics": 1},
    {"event_lookback_hours": 2**63},
    {"events_custom_dates": {"start": "2025-01-01T00:00:00Z", "end": "9999-12-31T23:59:59Z"}},
    {"start_dat": "2024-01-01T00:00:00Z"},
    {"lookback_window": True},
    {"lookback_window": 2**63},
    {"disable_fetching_predictive_analytics": "false"},
    {"metric_ids": ["RESQ6t"]},
]
INTEGERS = ("num_workers", "event_lookback_hours", "request_timeout_seconds", "retry_budget_seconds")
# The official settings' types in its spec (null: not set); event_metric_ids may also be a list, as ours.
OFFICIAL_TYPES = {
    "disable_fetching_predictive_analytics": (bool,),
    "lookback_window": (int,),
    "reporting_lookback_window": (int,),
    "metric_ids": (str,),
    "event_metric_ids": (str, list),
}


def bent(config: dict[str, Any]) -> bool:
    """Whether a typed field holds a value of another JSON type, which must be refused, never coerced."""
    windows = config.get("backfill_window_days")
    official = [name for name in OFFICIAL_TYPES if name in config and OFFICIAL_SETTINGS[name][0] not in config]
    return (
        any(name in config and (type(config[name]) is not int) for name in INTEGERS)
        or any(config[name] is not None and type(config[name]) not in OFFICIAL_TYPES[name] for name in official)
        or ("profiles_predictive_analytics" in config and type(config["profiles_predictive_analytics"]) is not bool)
        or (
            isinstance(windows, dict)  # a key no window has is only warned about
            and any(
                v is not None and type(v) is not int for k, v in windows.items() if k in BackfillWindows.model_fields
            )
        )
    )


def with_known_cases(base: dict[str, Any], fields: list[str]):
    return st.one_of(st.sampled_from([{**base, **case} for case in KNOWN_CASES]), configs(base, fields))


@pytest.mark.parametrize("derandomize", [True, False], ids=["fixed-examples", "random-seed"])
def test_fuzzed_configs_get_a_catalog_or_one_config_error(
    capfd, tmp_path, klaviyo_sim, reliability_report, derandomize
):
    """discover against the simulator (it looks up the account's metrics): the config's URL stays on it, and
    its rate limits are off, since hundreds of examples in a minute are no sync."""
    base = all_history_config(klaviyo_sim.dataset, klaviyo_sim.url)
    klaviyo_sim.faults.update({"rate_limit_scale": 0})
    outcomes: Counter[str] = Counter()

    @fuzz(derandomize)
    @given(config=with_known_cases(base, FUZZED))
    def discover(config):
        config = {**config, "api_url": klaviyo_sim.url}
        code, messages, output = run_in_process(capfd, "discover", config, tmp_path)
        assert "Traceback" not in output and not [m for m in messages if m["type"] == "UNPARSED"], output
        catalogs = [m for m in messages if m["type"] == "CATALOG"]
        error = config_error(messages)
        if catalogs:
            assert code == 0 and error is None and len(catalogs) == 1
            assert not bent(config), f"a value of the wrong type was coerced: {config}"
            outcomes["catalog"] += 1
        else:
            assert code == 1
            assert_human(error)
            outcomes["config error"] += 1

    discover()
    report_fuzz(
        reliability_report,
        f"discover ({'fixed' if derandomize else 'random'} examples)",
        outcomes,
        "a catalog or one config error, never a traceback; no value coerced",
    )
    assert outcomes["catalog"] and outcomes["config error"], "the fuzz reached both outcomes"


@pytest.mark.parametrize("derandomize", [True, False], ids=["fixed-examples", "random-seed"])
def test_fuzzed_configs_get_a_connection_status_with_a_human_message(
    capfd, tmp_path, klaviyo_sim, reliability_report, derandomize
):
    """check against the simulator: the config's URL stays on it, everything else is fuzzed; its rate limits
    are off (each check also probes the account, which Klaviyo allows 15 times a minute)."""
    base = all_history_config(klaviyo_sim.dataset, klaviyo_sim.url, retry_budget_seconds=10)
    klaviyo_sim.faults.update({"rate_limit_scale": 0})
    outcomes: Counter[str] = Counter()

    @fuzz(derandomize)
    @given(config=with_known_cases(base, FUZZED))
    def check(config):
        config = {**config, "api_url": klaviyo_sim.url}
        code, messages, output = run_in_process(capfd, "check", config, tmp_path)
        assert "Traceback" not in output and code == 0, output
        statuses = [m["connectionStatus"] for m in messages if m["type"] == "CONNECTION_STATUS"]
        assert len(statuses) == 1, output
        error = config_error(messages)
        if statuses[0]["status"] == "FAILED":
            assert_human(statuses[0]["message"])
        else:
            assert error is None and not bent(config), f"a value of the wrong type was coerced: {config}"
        outcomes[statuses[0]["status"]] += 1

    check()
    report_fuzz(
        reliability_report,
        f"check ({'fixed' if derandomize else 'random'} examples)",
        outcomes,
        "SUCCEEDED, or FAILED with a human message; never a traceback",
    )
    assert outcomes["SUCCEEDED"] and outcomes["FAILED"], "the fuzz reached both outcomes"


BROKEN_FILES = [
    ("config file that does not exist", "config", None, "cannot be read"),
    ("config file that is not JSON", "config", '{"api_key": "pk_', "is not valid JSON"),
    ("config file holding a list", "config", "[]", "must hold a JSON object"),
    ("catalog file that is not JSON", "catalog", "streams:", "is not valid JSON"),
    ("catalog without sync modes", "catalog", {"streams": [{"stream": {"name": "events"}}]}, "not a configured"),
    ("state file that is not JSON", "state", "[{", "is not valid JSON"),
    ("state file holding a string", "state", '"2024-01-01"', "must hold a JSON list"),
    ("state entry that is not a STATE message", "state", [{"type": "SOMETHING"}], "is not a STATE message"),
]


@pytest.mark.parametrize("scenario, file, content, expected", BROKEN_FILES, ids=[row[0] for row in BROKEN_FILES])
def test_a_broken_input_file_gets_one_config_error_naming_it(
    klaviyo_sim, tmp_path, reliability_report, scenario, file, content, expected
):
    config = all_history_config(klaviyo_sim.dataset, klaviyo_sim.url)
    catalog = configured_catalog(discovered_catalog(tmp_path, config), ["lists"])
    files = {"config": config, "catalog": catalog, "state": []}
    files[file] = content
    args = {name: value for name, value in files.items() if value is not None}
    if content is None:
        args["flags"] = [f"--{file}", str(tmp_path / "missing.json")]
    run = run_connector("read", tmp_path, **args)

    messages = [error["message"] for error in run.errors()]
    reliability_report(
        {
            "scenario": scenario,
            "expected": f"one config error: {expected}",
            "result": " | ".join(messages).replace(f"{tmp_path}/", ""),
        }
    )
    assert run.returncode == 1 and "Traceback" not in run.text
    assert len(messages) == 1 and expected in messages[0] and f"{file} file" in messages[0], messages
    assert [e["failure_type"] for e in run.errors()] == ["config_error"]
    assert not run.records()


def test_a_catalog_with_a_stream_this_connector_does_not_have_gets_a_config_error(
    klaviyo_sim, tmp_path, reliability_report
):
    config = all_history_config(klaviyo_sim.dataset, klaviyo_sim.url)
    catalog = configured_catalog(discovered_catalog(tmp_path, config), ["lists"])
    lists = catalog["streams"][0]
    catalog["streams"].append({**lists, "stream": {**lists["stream"], "name": "orders"}})
    run = run_connector("read", tmp_path, config=config, catalog=catalog)

    messages = [error["message"] for error in run.errors()]
    reliability_report(
        {
            "scenario": "catalog selecting an unknown stream",
            "expected": "one config error naming it",
            "result": " | ".join(messages),
        }
    )
    assert run.returncode == 1 and len(messages) == 1 and "orders" in messages[0] and "Refresh" in messages[0]
    assert not run.records()


def test_legacy_state_is_read_as_per_stream_state_with_a_warning(klaviyo_sim, tmp_path, reliability_report):
    config = all_history_config(klaviyo_sim.dataset, klaviyo_sim.url)
    catalog = configured_catalog(discovered_catalog(tmp_path, config), ["lists", "segments"])
    first = run_connector("read", tmp_path, config=config, catalog=catalog)
    legacy = {stream: first.stream_state(stream) for stream in ("lists", "segments")}
    resumed = run_connector("read", tmp_path, config=config, catalog=catalog, state=legacy)

    warnings = [m["log"]["message"] for m in resumed.of_type("LOG") if m["log"]["level"] == "WARN"]
    reliability_report(
        {
            "scenario": "state file in the legacy shape {stream: state}",
            "expected": "a warning; read resumes from it",
            "result": f"{len(resumed.records())} of {len(first.records())} records re-read",
        }
    )
    assert resumed.returncode == 0 and any("an object of per-stream states" in w for w in warnings), warnings
    assert len(resumed.records()) < len(first.records())
    for stream, state in legacy.items():
        # The newest record is read again (a sync after a finished one starts there, inclusive); nothing older is.
        newest = parse_klaviyo_datetime(state["slices"][0]["most_recent_cursor_value"])
        assert all(parse_klaviyo_datetime(record["updated"]) >= newest for record in resumed.records(stream))


@pytest.mark.parametrize(
    "scenario, stream_state",
    [
        ("state with another cursor's key", {"created": "2024-01-01T00:00:00+00:00"}),
        ("state whose cursor is not a datetime", {"updated": "yesterday"}),
        ("concurrent state with broken slices", {"state_type": "date-range", "slices": [{"start": 1}]}),
    ],
    ids=["other-cursor", "not-a-datetime", "broken-slices"],
)
def test_unusable_state_is_dropped_with_a_warning_and_the_stream_read_from_its_backfill_window(
    klaviyo_sim, tmp_path, reliability_report, scenario, stream_state
):
    config = all_history_config(klaviyo_sim.dataset, klaviyo_sim.url)
    catalog = configured_catalog(discovered_catalog(tmp_path, config), ["lists"])
    fresh = run_connector("read", tmp_path, config=config, catalog=catalog)
    state = [{"type": "STREAM", "stream": {"stream_descriptor": {"name": "lists"}, "stream_state": stream_state}}]
    run = run_connector("read", tmp_path, config=config, catalog=catalog, state=state)

    warnings = [m["log"]["message"] for m in run.of_type("LOG") if m["log"]["level"] == "WARN"]
    reliability_report(
        {
            "scenario": scenario,
            "expected": "a warning; the stream is read as on a first sync",
            "result": f"{len(run.records())} of {len(fresh.records())} records read",
            "records_expected": len(fresh.records()),
            "records_emitted": len(run.records()),
        }
    )
    assert run.returncode == 0 and any("Ignoring the state of stream lists" in w for w in warnings), warnings
    assert sorted(r["id"] for r in run.records()) == sorted(r["id"] for r in fresh.records())


def test_check_with_an_unreadable_config_reports_failed(tmp_path):
    run = run_connector("check", tmp_path, config='{"api_key": ')
    statuses = [m["connectionStatus"] for m in run.of_type("CONNECTION_STATUS")]
    assert run.returncode == 0 and "Traceback" not in run.text
    assert statuses and statuses[0]["status"] == "FAILED" and "is not valid JSON" in statuses[0]["message"]


# The state file fuzz: streams of each state shape (stream -> (shape, cursor field, parent field)).
FUZZED_STREAMS = {
    "events": ("date-range", "datetime", None),
    "templates": ("date-range", "updated", None),
    "list_memberships": ("parents", "joined_group_at", "list_id"),
    "campaign_messages": ("parents", None, "campaign_id"),
    "flow_values_reports": ("report", "start", None),
    "email_templates": ("official per-partition", "updated", "id"),  # the official connector's, for templates
}
TINY = Sizes(campaigns=3, templates=3, lists=2, segments=1, flows=2, profiles=30, events=60, event_days=10, coupons=1)
moments = st.one_of(
    st.sampled_from(
        [
            "2026-11-01T00:00:00Z",
            "2026-11-01T00:00:00+00:00",
            "2099-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "2026-11-01T00:00:00+0000",  # the official connector's formats
            "2026-11-01 00:00:00.5+00:00",
        ]
    ),
    # hypothesis takes naive bounds and adds the timezone itself
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(timezone.utc)).map(  # noqa: DTZ001
        lambda moment: moment.isoformat()
    ),
    values,
)


@st.composite
def stream_states(draw, stream: str) -> Any:
    """A state of `stream` in its own shape, with some values out of place, or another stream's shape, or any JSON."""
    shape, cursor, parent = FUZZED_STREAMS.get(stream, draw(st.sampled_from(list(FUZZED_STREAMS.values()))))
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return draw(json_values)
    if choice == 1:
        return {}
    if shape == "date-range" and choice < 6:
        pieces = draw(st.lists(st.fixed_dictionaries({"start": moments, "end": moments}), min_size=1, max_size=3))
        state = {"state_type": "date-range", "slices": pieces}
        if draw(st.booleans()):
            state["unfinished_sync_end"] = draw(moments)
        return state
    if shape == "parents":
        entries = draw(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "partition": st.fixed_dictionaries({parent: st.sampled_from(["A", "B", "zz"]) | values}),
                        "cursor": st.fixed_dictionaries({cursor: moments}) if cursor else st.just({}),
                    },
                    optional={"next_page": st.sampled_from(["api/lists/A/profiles?page%5Bcursor%5D=x", "http://x/y"])},
                ),
                max_size=3,
            )
        )
        return {"states": entries, **({"unfinished_sync_end": draw(moments)} if draw(st.booleans()) else {})}
    if shape == "official per-partition" and choice < 6:
        entries = draw(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "partition": st.fixed_dictionaries({parent: values}),
                        "cursor": st.fixed_dictionaries({cursor: moments}) | values,
                    }
                ),
                max_size=3,
            )
        )
        optional = {"state": st.fixed_dictionaries({cursor: moments}) | values, "lookback_window": values}
        return {"states": entries, **draw(st.fixed_dictionaries({}, optional=optional))}
    return {cursor or "updated": draw(moments), **({"quota": draw(json_values)} if draw(st.booleans()) else {})}


@st.composite
def state_messages(draw) -> tuple[dict[str, Any], str | None]:
    """One state message in a shape platforms send, and the stream it names (None: it names none)."""
    stream = draw(st.sampled_from([*FUZZED_STREAMS, "no_such_stream"]))
    state = draw(stream_states(stream))
    shape = draw(st.sampled_from(["stream", "typeless", "namespace", "legacy", "global", "garbage"]))
    descriptor: dict[str, Any] = {"name": stream}
    if shape == "namespace":
        descriptor["namespace"] = draw(st.sampled_from([None, "", "klaviyo"]))
    if shape in ("stream", "typeless", "namespace"):
        message = {"stream": {"stream_descriptor": descriptor, "stream_state": state}}
        return ({"type": "STREAM", **message} if shape != "typeless" else message), stream
    if shape == "legacy":
        return {"type": "LEGACY", "data": {stream: state}}, stream if isinstance(state, dict) else None
    if shape == "global":
        shared = draw(st.none() | st.just({}))
        entries = [{"stream_descriptor": descriptor, "stream_state": state}]
        return {"type": "GLOBAL", "global": {"shared_state": shared, "stream_states": entries}}, stream
    return draw(st.dictionaries(st.sampled_from(["type", "data", "stream", "global"]), json_values, max_size=2)), None


@st.composite
def state_files(draw) -> tuple[Any, set[str]]:
    """A state file's content, and the streams its messages name."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values), set()
    drawn = draw(st.lists(state_messages(), max_size=4))
    return [message for message, _ in drawn], {stream for _, stream in drawn if stream}


@pytest.mark.parametrize("derandomize", [True, False], ids=["fixed-examples", "random-seed"])
def test_fuzzed_state_files_resume_or_say_why_not_and_never_end_in_a_traceback(
    capfd, tmp_path, monkeypatch, reliability_report, derandomize
):
    """A read of one stream of each state shape, with the state file fuzzed: each stream a message names is either
    resumed or named in a log line (the connector says what it did with every state it was given); a file no state
    can be taken from is one config error; never a traceback. In process, against a tiny account, with the rate
    limits off on both sides (the report endpoints allow 2 requests a minute; rate limits are not under test here)."""
    monkeypatch.setattr(source_module, "build_budget", lambda *_: KlaviyoAPIBudget(policies=[]))
    outcomes: Counter[str] = Counter()
    with Simulator(Dataset(seed=5, now=NOW, sizes=TINY), Faults(rate_limit_scale=0)).run_in_thread() as sim:
        config = all_history_config(sim.dataset, sim.url)
        catalog = configured_catalog(discovered_catalog(tmp_path, config), FUZZED_STREAMS)

        @settings(
            max_examples=40 if derandomize else 25,
            deadline=None,
            derandomize=derandomize,
            database=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(drawn=state_files())
        def read(drawn):
            content, named = drawn
            code, messages, output = run_in_process(capfd, "read", config, tmp_path, catalog=catalog, state=content)
            assert "Traceback" not in output and UNHANDLED not in output, output[-3000:]
            assert not [m for m in messages if m["type"] == "UNPARSED"], output[-3000:]
            error = config_error(messages)
            if code:
                assert_human(error)
                outcomes["config error"] += 1
                return
            assert error is None, error
            logs = " ".join(m["log"]["message"] for m in messages if m["type"] == "LOG")
            silent = sorted(stream for stream in named if f"tream {stream} " not in logs and f"{stream}:" not in logs)
            assert not silent, f"nothing said about the state of {silent}"
            outcomes["read"] += 1

        read()
    report_fuzz(
        reliability_report,
        f"read ({'fixed' if derandomize else 'random'} examples)",
        outcomes,
        "each stream a state names is resumed or named in a warning; else one config error; never a traceback",
        what="state file",
    )
    assert outcomes["read"], "the fuzz reached reads"

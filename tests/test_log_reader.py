"""The reading side of the loss log: compact columns, clear errors, summaries, export."""

import math
import tracemalloc
from array import array
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nectarloss.columns import LogColumn, column_stats, multiply
from nectarloss.log import (
    LOG_FORMAT,
    LOG_VERSION,
    LogFormatError,
    LossSeries,
    export_nectargan,
    read_log,
    summarize_log,
)

NAN = math.nan
INF = math.inf

#: Bytes per logged step retained by read_log's result: three 8-byte array items
#: (step, value, weight) plus slack for array over-allocation; lists of Python numbers
#: took about 96 (three 8-byte slots plus a 24-byte float or int object each).
MAX_BYTES_PER_STEP = 40


def header(**overrides: Any) -> dict[str, Any]:
    line: dict[str, Any] = {
        "kind": "header",
        "format": LOG_FORMAT,
        "version": LOG_VERSION,
        "created": "2026-01-01T00:00:00+00:00",
        "losses": {"a": {"tags": ["G"], "weight": 2.0}},
    }
    line.update(overrides)
    return line


def chunk(name: str = "a", start: int = 0, values: Any = (1.0, 2.0), weight: float = 1.0) -> Any:
    values = list(values)
    return {
        "kind": "chunk",
        "loss": name,
        "steps": list(range(start, start + len(values))),
        "values": values,
        "weights": [weight] * len(values),
    }


def write(path: Path, *lines: Any, tail: bytes = b"") -> Path:
    """Write ``lines`` (dicts are JSON-encoded, bytes written as they are) plus ``tail``."""
    body = b"".join((ln if isinstance(ln, bytes) else orjson.dumps(ln)) + b"\n" for ln in lines)
    path.write_bytes(body + tail)
    return path


# ------------------------------------------------------------------------ columns
def test_series_are_compact_columns_with_a_list_api(tmp_path: Path) -> None:
    p = write(
        tmp_path / "log.jsonl",
        header(),
        chunk(values=[1.0, 2.0]),
        chunk(start=2, values=[3.0], weight=2.0),
    )
    series = read_log(p).losses["a"]
    assert isinstance(series.values, LogColumn) and series.values.typecode == "d"
    assert isinstance(series.steps, LogColumn) and series.steps.typecode == "q"
    assert series.steps == [0, 1, 2] and series.values == [1.0, 2.0, 3.0]
    assert series.values != [1.0, 2.0] and series.values != [1.0, 2.0, 4.0]
    assert series.values[0] == 1.0 and series.values[-1] == 3.0 and series.steps[-1] + 1 == 3
    assert isinstance(series.steps[-1], int) and isinstance(series.values[0], float)
    assert series.values[1:] == [2.0, 3.0] and isinstance(series.values[1:], LogColumn)
    assert series.values[::-1] == [3.0, 2.0, 1.0]
    assert len(series.values) == 3 and list(series.values) == [1.0, 2.0, 3.0]
    assert list(reversed(series.steps)) == [2, 1, 0]
    assert 2.0 in series.values and 7.0 not in series.values
    assert sum(series.values) == 6.0 and max(series.weights) == 2.0
    assert series.weighted == [1.0, 2.0, 6.0]
    assert series.values == (1.0, 2.0, 3.0) and series.steps == array("q", [0, 1, 2])
    assert series.values.tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(IndexError):
        series.values[3]
    with pytest.raises(TypeError):
        hash(series.values)


def test_column_equality_treats_nan_as_equal_and_repr_is_short() -> None:
    column = LogColumn(array("d", [1.0, NAN, INF]))
    assert column == [1.0, NAN, INF] and column == LogColumn(array("d", [1.0, NAN, INF]))
    assert column != [1.0, 2.0, INF]
    assert column != "abc" and column != {1.0, INF}
    assert repr(LogColumn(array("q", [1, 2]))) == "LogColumn('q', [1, 2])"
    long = LogColumn(array("d", [float(i) for i in range(1000)]))
    assert repr(long) == "LogColumn('d', [0.0, 1.0, 2.0, ..., 997.0, 998.0, 999.0], len=1000)"
    with pytest.raises(TypeError, match="LogColumn: `data` expected an array.array"):
        LogColumn([1.0])  # type: ignore[arg-type]


def test_column_numpy_view_is_zero_copy_and_read_only() -> None:
    np = pytest.importorskip("numpy")
    column = LogColumn(array("d", [1.0, 2.0]))
    view = np.asarray(column)
    assert view.dtype == np.float64 and view.tolist() == [1.0, 2.0]
    with pytest.raises(ValueError):
        view[0] = 5.0
    assert column[0] == 1.0
    assert np.asarray(LogColumn(array("q", []))).shape == (0,)
    assert np.asarray(column, dtype=np.float32).dtype == np.float32


def test_series_from_lists_and_length_check() -> None:
    series = LossSeries(steps=[0, 1], values=[0.5, NAN], weights=[2.0, 2.0])
    assert series.steps == [0, 1] and series.values == [0.5, NAN]
    assert series.weighted == [1.0, NAN]
    assert LossSeries() == LossSeries(steps=[], values=[], weights=[])
    assert len(LossSeries().weighted) == 0
    with pytest.raises(ValueError, match="LossSeries: `values` expected 2 items"):
        LossSeries(steps=[0, 1], values=[0.5], weights=[1.0, 1.0])


def test_weighted_with_unit_weights_is_the_values_column() -> None:
    values = LogColumn(array("d", [1.0, 2.0]))
    assert multiply(values, LogColumn(array("d", [1.0, 1.0]))) is values
    assert multiply(values, LogColumn(array("d", [1.0, 3.0]))) == [1.0, 6.0]
    with pytest.raises(ValueError, match="multiply: `weights` expected 2 items"):
        multiply(values, LogColumn(array("d", [1.0])))


def test_column_stats_skip_nonfinite() -> None:
    stats = column_stats(LogColumn(array("d", [1.0, NAN, 3.0, -INF])))
    assert (stats.count, stats.num_finite, stats.mean, stats.min, stats.max) == (
        4,
        2,
        2.0,
        1.0,
        3.0,
    )
    empty = column_stats(LogColumn(array("d")))
    assert empty.count == 0 and math.isnan(empty.mean)
    assert math.isnan(column_stats(LogColumn(array("d", [NAN]))).max)


def test_read_log_keeps_about_24_bytes_per_step(tmp_path: Path) -> None:
    num_steps, size = 200_000, 1000
    p = tmp_path / "log.jsonl"
    with p.open("wb") as fh:
        fh.write(orjson.dumps(header()) + b"\n")
        for start in range(0, num_steps, size):
            values = [0.1 + i * 1e-7 for i in range(start, start + size)]
            fh.write(orjson.dumps(chunk("a", start, values, 2.0)) + b"\n")
    tracemalloc.start()
    try:
        log = read_log(p)
        retained, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(log.losses["a"].values) == num_steps
    assert retained / num_steps < MAX_BYTES_PER_STEP, retained / num_steps


# ------------------------------------------------------------------------ errors
def assert_format_error(path: Path, line: int, *words: str) -> None:
    with pytest.raises(LogFormatError) as info:
        read_log(path)
    message = str(info.value)
    assert message.startswith(f"{path}: line {line}"), message
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize("key", ["loss", "steps", "values", "weights"])
def test_chunk_missing_a_key(tmp_path: Path, key: str) -> None:
    bad = chunk()
    del bad[key]
    p = write(tmp_path / "log.jsonl", header(), chunk(), bad, chunk())
    assert_format_error(p, 3, f"`{key}`", "missing")


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("loss", 3, ("`loss`", "string")),
        ("loss", None, ("`loss`", "string")),
        ("steps", "0,1", ("`steps`", "list")),
        ("steps", {"0": 1}, ("`steps`", "list")),
        ("values", 1.0, ("`values`", "list")),
        ("weights", None, ("`weights`", "list")),
        ("steps", [0, 1.5], ("`steps`", "integers")),
        ("steps", [0, "1"], ("`steps`", "integers")),
        ("steps", [0, True], ("`steps`", "integers")),
        ("steps", [0, 2**63], ("`steps`", "integers")),
        ("values", [1.0, None], ("`values`", "numbers")),
        ("values", [1.0, "oops"], ("`values`", "numbers")),
        ("values", [1.0, [2.0]], ("`values`", "numbers")),
        ("values", [1.0, False], ("`values`", "numbers")),
        ("weights", [1.0, "NaN?"], ("`weights`", "numbers")),
        ("weights", [1.0, True], ("`weights`", "numbers")),
    ],
)
def test_chunk_with_a_wrong_type(tmp_path: Path, key: str, value: Any, words: tuple[str]) -> None:
    bad = chunk()
    bad[key] = value
    p = write(tmp_path / "log.jsonl", header(), bad)
    assert_format_error(p, 2, *words)


def test_chunk_lengths_differ(tmp_path: Path) -> None:
    bad = chunk(values=[1.0, 2.0, 3.0])
    bad["weights"] = [1.0, 1.0]
    p = write(tmp_path / "log.jsonl", header(), chunk(), bad)
    assert_format_error(p, 3, "steps 3", "values 3", "weights 2")


@pytest.mark.parametrize("line", [b"[1, 2]", b"3", b'"chunk"', b"null"])
def test_line_not_an_object(tmp_path: Path, line: bytes) -> None:
    assert_format_error(write(tmp_path / "log.jsonl", header(), line), 2, "JSON object")
    assert_format_error(write(tmp_path / "log.jsonl", line, header()), 1, "JSON object")


@pytest.mark.parametrize("version", [2, 0, "1", None, True, 1.5])
def test_unknown_version(tmp_path: Path, version: Any) -> None:
    p = write(tmp_path / "log.jsonl", header(version=version), chunk())
    assert_format_error(p, 1, f"version {version!r}", f"version {LOG_VERSION}")


def test_missing_version(tmp_path: Path) -> None:
    line = header()
    del line["version"]
    assert_format_error(write(tmp_path / "log.jsonl", line), 1, "version")


@pytest.mark.parametrize(
    ("lines", "number", "words"),
    [
        ([header(losses=[1])], 1, ("`losses`", "object")),
        ([header(losses={"a": 3})], 1, ("`losses.a`", "object")),
        ([header(), {"kind": "register"}], 2, ("`losses`", "missing")),
        ([header(), {"kind": "register", "losses": "a"}], 2, ("`losses`", "object")),
        ([header(), {"kind": "bogus"}], 2, ("unknown kind 'bogus'",)),
        ([header(), {"loss": "a"}], 2, ("unknown kind None",)),
        ([header(), header()], 2, ("second header",)),
        ([chunk()], 1, ("header",)),
        ([header(format="other")], 1, ("header",)),
    ],
)
def test_malformed_header_and_other_lines(
    tmp_path: Path, lines: list[Any], number: int, words: tuple[str]
) -> None:
    assert_format_error(write(tmp_path / "log.jsonl", *lines), number, *words)


def test_empty_and_blank_logs(tmp_path: Path) -> None:
    for body in (b"", b"\n\n", b"   \n"):
        (tmp_path / "log.jsonl").write_bytes(body)
        with pytest.raises(LogFormatError, match="empty log"):
            read_log(tmp_path / "log.jsonl")


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    p = write(tmp_path / "log.jsonl", header(), b"", chunk(), b"  ", chunk(start=2))
    assert read_log(p).losses["a"].steps == [0, 1, 2, 3]


def test_corrupt_last_line_with_its_newline_is_an_error(tmp_path: Path) -> None:
    p = write(tmp_path / "log.jsonl", header(), chunk(), b'{"kind": "chu')
    assert_format_error(p, 3, "not valid JSON")


def test_truncated_last_line_is_accepted(tmp_path: Path) -> None:
    whole = orjson.dumps(chunk(start=2, values=[3.0, 4.0]))
    for cut in (1, 10, len(whole) // 2, len(whole) - 1):
        p = write(tmp_path / "log.jsonl", header(), chunk(), tail=whole[:cut])
        log = read_log(p)
        assert log.truncated and log.losses["a"].values == [1.0, 2.0], cut


def test_truncated_line_right_after_the_header(tmp_path: Path) -> None:
    p = write(tmp_path / "log.jsonl", header(), tail=b'{"kind": "chunk", "loss": "a", "st')
    log = read_log(p)
    assert log.truncated and log.losses == {} and set(log.info) == {"a"}


def test_complete_last_line_without_newline_is_read(tmp_path: Path) -> None:
    p = write(tmp_path / "log.jsonl", header(), tail=orjson.dumps(chunk()))
    log = read_log(p)
    assert not log.truncated and log.losses["a"].values == [1.0, 2.0]


def test_nonfinite_names_decode(tmp_path: Path) -> None:
    p = write(tmp_path / "log.jsonl", header(), chunk(values=["NaN", 1.0, "Infinity", "-Infinity"]))
    values = read_log(p).losses["a"].values
    assert values == [NAN, 1.0, INF, -INF]
    assert math.isnan(values[0])


def test_integer_values_read_as_floats(tmp_path: Path) -> None:
    p = write(tmp_path / "log.jsonl", header(), chunk(values=[1, 2]))
    series = read_log(p).losses["a"]
    assert series.values == [1.0, 2.0] and isinstance(series.values[0], float)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)  # orjson writes 64-bit integers only
    | st.floats(allow_nan=False)
    | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    key=st.sampled_from(["kind", "loss", "steps", "values", "weights", "version", "losses"]),
    value=JSON,
    drop=st.booleans(),
    in_header=st.booleans(),
)
def test_any_damaged_line_reads_or_raises_log_format_error(
    tmp_path: Path, key: str, value: Any, drop: bool, in_header: bool
) -> None:
    line = header() if in_header else chunk()
    if drop:
        line.pop(key, None)
    else:
        line[key] = value
    lines = [line, chunk()] if in_header else [header(), line, chunk()]
    p = write(tmp_path / "log.jsonl", *lines)
    try:
        log = read_log(p)
    except LogFormatError as exc:
        assert str(exc).startswith(f"{p}: line "), exc
    else:  # what was read is consistent
        for series in log.losses.values():
            assert len(series.steps) == len(series.values) == len(series.weights)
        summarize_log(log)


# ------------------------------------------------------------------------ summary, export
def test_summarize_log_statistics(tmp_path: Path) -> None:
    p = write(
        tmp_path / "log.jsonl",
        header(),
        chunk(values=[1.0, "NaN", 3.0], weight=2.0),
        chunk("b", values=["Infinity"]),
    )
    stats = summarize_log(p)
    assert stats["a"] == {
        "last": 6.0,
        "mean": 4.0,
        "min": 2.0,
        "max": 6.0,
        "weight": 2.0,
        "count": 3.0,
        "nonfinite": 1.0,
    }
    raw = summarize_log(p, weighted=False)["a"]
    assert (raw["mean"], raw["min"], raw["max"]) == (2.0, 1.0, 3.0)
    b = summarize_log(p)["b"]
    assert b["last"] == INF and math.isnan(b["mean"]) and b["nonfinite"] == 1.0


def test_export_nectargan_matches_the_layout(tmp_path: Path) -> None:
    p = write(
        tmp_path / "log.jsonl",
        header(),
        chunk(values=[1.0, 2.0]),
        chunk(start=2, values=[3.0, "NaN"], weight=2.0),
        chunk('D "real"', values=[0.5]),
    )
    out = export_nectargan(p, tmp_path / "loss_log.json")
    data = orjson.loads(out.read_bytes())
    assert data == {
        "LOSSMANAGER_LOG": {
            "loss_functions": {
                "a": {"loss": [1.0, 2.0, 6.0, None], "weights": [1.0, 1.0, 2.0, 2.0]},
                'D "real"': {"loss": [0.5], "weights": [1.0]},
            }
        }
    }
    raw = orjson.loads(
        export_nectargan(read_log(p), tmp_path / "raw.json", weighted=False).read_bytes()
    )
    assert raw["LOSSMANAGER_LOG"]["loss_functions"]["a"]["loss"] == [1.0, 2.0, 3.0, None]


def test_export_nectargan_of_a_log_without_values(tmp_path: Path) -> None:
    out = export_nectargan(write(tmp_path / "log.jsonl", header()), tmp_path / "x.json")
    assert orjson.loads(out.read_bytes()) == {"LOSSMANAGER_LOG": {"loss_functions": {}}}


def test_export_nectargan_of_many_values(tmp_path: Path) -> None:
    values = [i / 7 for i in range(150_000)]
    p = write(tmp_path / "log.jsonl", header(), chunk(values=values, weight=3.0))
    data = orjson.loads(export_nectargan(p, tmp_path / "x.json").read_bytes())
    exported = data["LOSSMANAGER_LOG"]["loss_functions"]["a"]
    assert exported["loss"] == [v * 3.0 for v in values] and exported["weights"] == [3.0] * 150_000


@pytest.mark.parametrize("name", ["a", "D_real", "true", "G_fake_false", "é r"])
@pytest.mark.parametrize("key", ["steps", "values", "weights"])
def test_booleans_are_caught_whatever_the_loss_name(tmp_path: Path, name: str, key: str) -> None:
    good = chunk(name, values=[1.0, "Infinity"])
    p = write(tmp_path / "log.jsonl", header(), good, chunk(name, start=2))
    assert read_log(p).losses[name].values == [1.0, INF, 1.0, 2.0]  # names alone are fine
    bad = chunk(name, values=[1.0, "Infinity"])
    bad[key][0] = key != "steps"  # True, or False for a step
    assert_format_error(write(tmp_path / "log.jsonl", header(), bad), 2, f"`{key}`", "boolean")


@pytest.mark.parametrize("command", ["show", "plot", "export"])
def test_cli_reports_a_malformed_log_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    from nectarloss.cli import main

    bad = chunk()
    del bad["weights"]
    p = write(tmp_path / "log.jsonl", header(), chunk(), bad)
    assert (
        main([command, str(p), *(["-o", str(tmp_path / "out")] if command != "show" else [])]) == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{p}: line 3" in err and "`weights` missing" in err
    write(tmp_path / "log.jsonl", header(version=LOG_VERSION + 1), chunk())
    assert (
        main([command, str(p), *(["-o", str(tmp_path / "out")] if command != "show" else [])]) == 2
    )
    assert f"log version {LOG_VERSION + 1} is not supported" in capsys.readouterr().err


def test_show_tolerates_odd_registration_info(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nectarloss.cli import main

    p = write(tmp_path / "log.jsonl", header(losses={"a": {"tags": [1, None], "modifiers": "x"}}))
    assert main(["show", str(p)]) == 0
    assert "a: tags=1,None" in capsys.readouterr().out

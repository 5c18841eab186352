from pathlib import Path

import orjson
import pytest

from nectarloss.log import (
    LOG_FORMAT,
    LogFormatError,
    LossLogWriter,
    export_nectargan,
    header_line,
    read_log,
)


def chunk(name: str, start: int, values: list[float], weight: float = 1.0) -> dict[str, object]:
    return {
        "kind": "chunk",
        "loss": name,
        "steps": list(range(start, start + len(values))),
        "values": values,
        "weights": [weight] * len(values),
    }


def write_log(path: Path) -> LossLogWriter:
    w = LossLogWriter(path)
    w.append([header_line({"a": {"tags": ["G"]}}), chunk("a", 0, [1.0, 2.0])])
    w.append(
        [
            {"kind": "register", "losses": {"b": {"tags": []}}},
            chunk("a", 2, [3.0], 2.0),
            chunk("b", 0, [9.0]),
        ]
    )
    return w


def test_reader_joins_chunks_in_order(tmp_path: Path) -> None:
    write_log(tmp_path / "log.jsonl")
    log = read_log(tmp_path / "log.jsonl")
    assert log.header["format"] == LOG_FORMAT
    assert log.losses["a"].steps == [0, 1, 2]
    assert log.losses["a"].values == [1.0, 2.0, 3.0]
    assert log.losses["a"].weighted == [1.0, 2.0, 6.0]
    assert log.losses["b"].values == [9.0]
    assert set(log.info) == {"a", "b"} and not log.truncated


def test_reader_tolerates_truncated_last_line(tmp_path: Path) -> None:
    p = tmp_path / "log.jsonl"
    write_log(p)
    with p.open("ab") as fh:
        fh.write(orjson.dumps(chunk("a", 3, [4.0]))[:25])
    log = read_log(p)
    assert log.truncated and log.losses["a"].values == [1.0, 2.0, 3.0]


def test_writer_cuts_partial_line_before_appending(tmp_path: Path) -> None:
    p = tmp_path / "log.jsonl"
    write_log(p)
    with p.open("ab") as fh:
        fh.write(b'{"kind": "chu')
    w = LossLogWriter(p, mode="resume")  # a resumed run
    w.append([chunk("a", 3, [4.0])])
    log = read_log(p)
    assert not log.truncated and log.losses["a"].values == [1.0, 2.0, 3.0, 4.0]


def test_corrupt_middle_line_names_line_number(tmp_path: Path) -> None:
    p = tmp_path / "log.jsonl"
    write_log(p)
    lines = p.read_bytes().split(b"\n")
    lines[1] = b"{not json"
    p.write_bytes(b"\n".join(lines))
    with pytest.raises(LogFormatError, match="line 2 is not valid JSON"):
        read_log(p)


def test_not_a_nectarloss_log(tmp_path: Path) -> None:
    p = tmp_path / "other.jsonl"
    p.write_bytes(b'{"hello": 1}\n')
    with pytest.raises(LogFormatError, match="header"):
        read_log(p)
    with pytest.raises(LogFormatError, match="header.*overwrite=True"):
        LossLogWriter(p, mode="resume")


def test_export_nectargan_layout(tmp_path: Path) -> None:
    write_log(tmp_path / "log.jsonl")
    out = export_nectargan(tmp_path / "log.jsonl", tmp_path / "loss_log.json")
    data = orjson.loads(out.read_bytes())
    fns = data["LOSSMANAGER_LOG"]["loss_functions"]
    assert fns["a"] == {"loss": [1.0, 2.0, 6.0], "weights": [1.0, 1.0, 2.0]}
    raw = orjson.loads(
        export_nectargan(tmp_path / "log.jsonl", tmp_path / "raw.json", weighted=False).read_bytes()
    )
    assert raw["LOSSMANAGER_LOG"]["loss_functions"]["a"]["loss"] == [1.0, 2.0, 3.0]


def test_partial_line_longer_than_one_read_chunk_is_cut(tmp_path: Path) -> None:
    p = tmp_path / "log.jsonl"
    write_log(p)
    whole = p.read_bytes()
    with p.open("ab") as fh:
        fh.write(b'{"kind": "chunk", "values": [' + b"1.0, " * 30_000)  # > 64 KiB, no newline
    LossLogWriter(p, mode="resume")
    assert p.read_bytes() == whole


def test_writer_resumes_only_a_log_version_it_reads(tmp_path: Path) -> None:
    p = tmp_path / "log.jsonl"
    p.write_bytes(b'{"kind": "header", "format": "nectarloss.loss_log", "version": 99}\n')
    with pytest.raises(LogFormatError, match="log version 99 is not supported.*overwrite=True"):
        LossLogWriter(p, mode="resume")
    LossLogWriter(p, mode="overwrite").close()  # the way on
    assert p.read_bytes() == b""

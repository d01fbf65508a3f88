"""Report writing (edgetrain/outputs.py): atomic replacement, failures that keep the old file and the
report, and output paths checked before a command does any work."""
from __future__ import annotations

import json
import os
import threading

import pytest

from edgetrain import cli
from edgetrain.outputs import check_output_dir, check_output_file, write_atomic, write_report
from edgetrain.errors import ArgumentError


def test_a_shorter_report_replaces_a_longer_one_whole(tmp_path):
    path = tmp_path / "r.json"
    write_atomic(path, "x" * 1000)
    write_atomic(path, "short\n")
    assert path.read_text() == "short\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_concurrent_writers_leave_one_complete_report(tmp_path):
    path = tmp_path / "r.json"
    payloads = [json.dumps({"who": who, "pad": "y" * size}) for who, size in (("a", 10), ("b", 100_000))]

    def writer(text):
        for _ in range(40):
            write_atomic(path, text)

    threads = [threading.Thread(target=writer, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert path.read_text() in payloads
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_its_temp(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    path.write_text("old\n")

    def broken(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(ArgumentError, match="cannot write .*No space left on device"):
        write_atomic(path, "new\n")
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_a_report_that_cannot_be_written_goes_to_stdout(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(os, "replace", lambda src, dst: (_ for _ in ()).throw(OSError(5, "Input/output error")))
    with pytest.raises(ArgumentError, match="the report was printed to stdout instead"):
        write_report(tmp_path / "r.json", '{"accuracy": 0.9}\n')
    assert capsys.readouterr().out == '{"accuracy": 0.9}\n\n'


@pytest.mark.parametrize("name, fragment", [
    ("", "the path is empty"),
    ("   ", "the path is empty"),
    ("{tmp}", "is a folder"),
    ("{tmp}/no/such/r.json", "does not exist"),
    ("/dev/null", "is not a regular file"),
])
def test_output_file_checks(tmp_path, name, fragment):
    with pytest.raises(ArgumentError, match=fragment):
        check_output_file(name.format(tmp=tmp_path))


def test_output_file_accepts_new_and_existing_files(tmp_path):
    (tmp_path / "old.json").write_text("{}")
    assert check_output_file(tmp_path / "old.json") == tmp_path / "old.json"
    assert check_output_file(tmp_path / "new.json") == tmp_path / "new.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.json"]  # the check leaves nothing behind


def test_output_dir_checks(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(ArgumentError, match="exists and is not a folder"):
        check_output_dir(tmp_path / "f")
    with pytest.raises(ArgumentError, match="is not a folder"):
        check_output_dir(tmp_path / "f" / "sub")
    assert check_output_dir(tmp_path / "new" / "plots") == tmp_path / "new" / "plots"
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("argv", [
    ["run", "--model", "mlp", "--samples", "5", "--json", "{tmp}/missing/r.json"],
    ["run", "--model", "mlp", "--samples", "5", "--memory-map", "rram-mcu", "--plots", "{tmp}/file"],
])
def test_output_paths_are_checked_before_any_data_is_read(tmp_path, monkeypatch, capsys, argv):
    from edgetrain.data import mnist

    (tmp_path / "file").write_text("")
    monkeypatch.setattr(mnist, "load", lambda *a, **k: pytest.fail("the command read data before checking its outputs"))
    assert cli.main([a.format(tmp=tmp_path) for a in argv]) == 2
    assert "error: argument --" in capsys.readouterr().err

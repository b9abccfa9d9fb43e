"""tests/mutation.py (./run mutate): the score arithmetic and the list of equivalent mutants."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("mutation_tool", ROOT / "tests" / "mutation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_score_counts_timeouts_as_detected_and_leaves_out_listed_equivalents(tool) -> None:
    diff = "-    y = a + b\n+    y = a - b"
    result = {
        "module": "fxdsp/x.py",
        "mutants": [
            {"name": "m1", "status": "killed"},
            {"name": "m2", "status": "timeout"},
            {
                "name": "m3",
                "status": "survived",
                "original": "y = a + b",
                "mutated": "y = a - b",
                "diff": diff,
            },
            {
                "name": "m4",
                "status": "survived",
                "original": "y = a + b",
                "mutated": "y = b",
                "diff": "-    y = a + b\n+    y = b",
            },
            {"name": "m5", "status": "no tests", "original": "z = 1", "mutated": "z = 2"},
            {"name": "m6", "status": "skipped"},
            {"name": "m7", "status": "not checked"},
        ],
    }
    equivalent = [
        {"module": "fxdsp/x.py", "original": "y = a + b", "mutated": "y = a - b", "reason": "r"},
        {"module": "fxdsp/other.py", "original": "y = a + b", "mutated": "y = b", "reason": "r"},
    ]
    s = tool.summarize(result, equivalent)
    assert (s["detected"], s["checked"], s["equivalent"]) == (2, 5, 1)
    assert s["score"] == pytest.approx(40.0) and s["score_net"] == pytest.approx(50.0)
    # the reason applies to its module and its exact lines only (m4, other module: not listed)
    assert tool.equivalent_reason("fxdsp/x.py", result["mutants"][2], equivalent) == "r"
    assert tool.equivalent_reason("fxdsp/x.py", result["mutants"][3], equivalent) is None
    # the original line is read from the diff where a kept result has none
    no_original = {"status": "survived", "mutated": "y = a - b", "diff": diff}
    assert tool.equivalent_reason("fxdsp/x.py", no_original, equivalent) == "r"


def test_every_listed_equivalent_names_a_mutated_module_line_that_exists(tool) -> None:
    """A stale entry (its line edited away) would excuse nothing; it must be removed."""
    table = tool.module_table()
    entries = tool.load_equivalent()
    assert entries, "tests/mutation_equivalent.toml lists no equivalent mutant"
    for entry in entries:
        assert entry["module"] in table, entry
        if entry.get("block"):  # a block of lines: both ends there once, in order
            span = entry["span"]
            assert span is not None and span[0] < span[1], entry
            continue
        source = [line.strip() for line in (ROOT / entry["module"]).read_text().splitlines()]
        assert entry["original"] in source, (entry["module"], entry["original"])
        assert entry["mutated"] != entry["original"] and len(entry["reason"]) > 20, entry


def test_report_rows_total_and_modules_not_run(tool, tmp_path, monkeypatch) -> None:
    import json

    monkeypatch.setattr(tool, "OUT", tmp_path)
    monkeypatch.setattr(tool, "module_table", lambda: {"fxdsp/a.py": [], "fxdsp/b.py": []})
    (tmp_path / "results").mkdir()
    mutants = [{"name": f"k{i}", "status": "killed"} for i in range(3)]
    mutants += [
        {"name": "s", "status": "survived", "original": "x = 1", "mutated": "x = 2",
         "diff": "-    x = 1\n+    x = 2", "line": 7},
        {"name": "n", "status": "not checked"},
    ]  # fmt: skip
    result = {"module": "fxdsp/a.py", "mutants": mutants, "wall_s": 90.0, "date": "2026-12-01T1"}
    (tmp_path / "results" / "fxdsp_a.json").write_text(json.dumps(result))
    lines = tool.write_report([]).read_text().splitlines()
    assert (
        "| fxdsp/a.py | 5 | 4 | 3 | 0 | 1 | 0 | 0 | 75.0 % | 75.0 % | 90 s | 2026-12-01 |" in lines
    )
    assert "| fxdsp/b.py | not run yet | | | | | | | | | | |" in lines
    assert any(line.startswith("| **all** | | 4 | 3 detected |") for line in lines)
    assert "### fxdsp/a.py:7 `s`" in lines and "```diff" in lines


def test_mutant_block_finds_the_source_lines_and_keeps_their_indentation(tool) -> None:
    module = "fxdsp/functional/reverb.py"
    source = (ROOT / module).read_text().splitlines()
    line = next(i + 1 for i, text in enumerate(source) if text.strip() == "p5 *= 5")
    indent = source[line - 1][: len(source[line - 1]) - len(source[line - 1].lstrip())]
    # mutmut shows a method's lines with one indent level less: matched on the stripped text
    shown = {"name": "m", "diff": "-    p5 *= 5\n+    p5 = 5"}
    assert tool.mutant_block(module, shown, "mutmut") == (line, 1, [indent + "p5 = 5"])
    # two contiguous lines replaced by one (an error message's f-string by None)
    first = next(i for i, text in enumerate(source) if text.strip().startswith(
        'f"impulse_response must be (taps,), (channels, taps)'))  # fmt: skip
    two = {"name": "m", "diff": f"-{source[first].strip()}\n-{source[first + 1].strip()}\n+None"}
    got = tool.mutant_block(module, two, "mutmut")
    assert got is not None and got[:2] == (first + 1, 2)
    assert got[2] == [source[first][: len(source[first]) - len(source[first].lstrip())] + "None"]
    # lines that are not in the source, or not once, are not placed
    assert tool.mutant_block(module, {"name": "m", "diff": "-    a = 1\n-    b = 2\n+    a = 2"},
                             "mutmut") is None  # fmt: skip
    assert tool.mutant_block(module, {"name": "m", "diff": "-)\n+]"}, "mutmut") is None


def test_report_tells_not_measurable_from_equivalent(tool, tmp_path, monkeypatch) -> None:
    import json

    monkeypatch.setattr(tool, "OUT", tmp_path)
    monkeypatch.setattr(tool, "module_table", lambda: {"fxdsp/a.py": []})
    (tmp_path / "results").mkdir()
    mutants = [
        {"name": n, "status": "survived", "original": f"x = {n}", "mutated": "x = 0",
         "diff": f"-    x = {n}\n+    x = 0", "line": 1}
        for n in ("1", "2")
    ]  # fmt: skip
    result = {"module": "fxdsp/a.py", "mutants": mutants, "wall_s": 1.0, "date": "2026-12-01"}
    (tmp_path / "results" / "fxdsp_a.json").write_text(json.dumps(result))
    listed = [
        {"module": "fxdsp/a.py", "original": "x = 1", "mutated": "x = 0", "reason": "same"},
        {"module": "fxdsp/a.py", "original": "x = 2", "mutated": "x = 0",
         "reason": "Not measurable under mutmut: a frame more"},
    ]  # fmt: skip
    lines = tool.write_report(listed).read_text().splitlines()
    assert "equivalent: same" in lines and "not measurable: under mutmut: a frame more" in lines
    assert "| fxdsp/a.py | 2 | 2 | 0 | 0 | 2 | 0 | 2 | 0.0 % | 0.0 % | 1 s | 2026-12-01 |" in lines


def test_a_listed_block_covers_the_survivors_on_its_lines_only(tool) -> None:
    module = "fxdsp/kernels/compressor.py"
    block = {"module": module, "first": "if not _numba_cuda_usable():",
             "last": "kernel[blocks, _CUDA_THREADS, stream](*arrays)",
             "reason": "Not measurable here", "block": True}  # fmt: skip
    block["span"] = first, last = tool.block_lines(block)
    inside = {"status": "survived", "line": first + 2, "diff": "-    a\n+    b"}
    after = {"status": "survived", "line": last + 1, "diff": "-    a\n+    b"}
    killed = {"status": "killed", "line": first + 2}
    assert tool.equivalent_reason(module, inside, [block]) == "Not measurable here"
    assert tool.equivalent_reason(module, after, [block]) is None
    assert tool.equivalent_reason(module, killed, [block]) is None
    assert tool.equivalent_reason("fxdsp/other.py", inside, [block]) is None

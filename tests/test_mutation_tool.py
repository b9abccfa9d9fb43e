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
        source = [line.strip() for line in (ROOT / entry["module"]).read_text().splitlines()]
        assert entry["original"] in source, (entry["module"], entry["original"])
        assert entry["mutated"] != entry["original"] and len(entry["reason"]) > 20, entry

"""Mutation testing of the DSP core and the data cache with mutmut (``./run mutate [MODULE...]``).

Each module listed in ``[tool.mixfx.mutation]`` of ``pyproject.toml`` is mutated in its own copy of
the tracked files (``out/mutation/work/<module>/``) and its mutants run against only the test files
listed for it. The result of each module is kept in ``out/mutation/results/<module>.json``, so
modules can be run one at a time, across sessions; ``out/mutation/REPORT.md`` is rebuilt from all
kept results after every run: the score per module and in total, and every surviving mutant with
file:line and diff, marked when ``tests/mutation_equivalent.toml`` lists it as equivalent (it
cannot change behaviour) with the reason.

Score: detected / checked, where detected counts mutants that a test failed on ("killed") or that
made a test run past mutmut's time limit ("timeout"), and checked leaves out only mutants mutmut
skipped. A mutant that no listed test reaches ("no tests") counts as not detected. Equivalent
mutants leave the denominator (the report gives both figures).

mutmut's trampolines are Python, which a jitted Numba kernel cannot call: a module whose source
uses Numba runs with ``NUMBA_DISABLE_JIT=1``; every other module keeps the compiled kernels (the
loudness and filter tests run hundreds of times faster with them).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "out" / "mutation"
EQUIVALENT_FILE = ROOT / "tests" / "mutation_equivalent.toml"
PACKAGES = ["fxdsp", "fxdata", "mixfx", "fxencoder", "cloner", "tests"]


def module_table() -> dict[str, list[str]]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return pyproject["tool"]["mixfx"]["mutation"]


def load_equivalent() -> list[dict[str, str]]:
    """Entries ``{module, original, mutated, reason}``: a surviving mutant of ``module`` whose
    diff turns the line ``original`` into ``mutated`` (stripped, exactly) cannot change
    behaviour, for ``reason``. Keyed by the lines rather than mutmut's numbering, which shifts
    when a function changes."""
    if not EQUIVALENT_FILE.exists():
        return []
    listed = tomllib.loads(EQUIVALENT_FILE.read_text())
    entries = listed.get("equivalent", [])
    for entry in entries:
        missing = {"module", "original", "mutated", "reason"} - set(entry)
        if missing:
            raise SystemExit(f"{EQUIVALENT_FILE}: an entry lacks {sorted(missing)}: {entry}")
    for block in listed.get("not_measurable_block", []):
        missing = {"module", "first", "last", "reason"} - set(block)
        if missing or not block.get("reason", "").startswith(NOT_MEASURABLE):
            raise SystemExit(
                f"{EQUIVALENT_FILE}: a block needs module, first, last and a reason that starts "
                f"with {NOT_MEASURABLE!r}: {block}"
            )
        entries.append({**block, "block": True, "span": block_lines(block)})
    return entries


def block_lines(entry: dict[str, str]) -> tuple[int, int] | None:
    """1-based ``(first, last)`` lines of a listed block in the module's current source (each
    line must be there once), or None."""
    source = [line.strip() for line in (ROOT / entry["module"]).read_text().splitlines()]
    if source.count(entry["first"]) != 1 or source.count(entry["last"]) != 1:
        return None
    return source.index(entry["first"]) + 1, source.index(entry["last"]) + 1


def equivalent_reason(module: str, mutant: dict, equivalent: list[dict[str, str]]) -> str | None:
    if mutant["status"] != "survived":
        return None
    _, removed, _ = diff_lines(mutant.get("diff", ""))
    original = mutant.get("original", removed[0].strip() if removed else "")
    for entry in equivalent:
        if entry.get("block"):
            span = entry["span"] if entry["module"] == module else None
            if span and mutant.get("line") and span[0] <= mutant["line"] <= span[1]:
                return entry["reason"]
            continue
        if (
            entry["module"] == module
            and entry["original"] == original
            and entry["mutated"] == mutant.get("mutated")
        ):
            return entry["reason"]
    return None


def status_of(exit_code: int | None) -> str:
    from mutmut.stats import status_by_exit_code

    return status_by_exit_code[exit_code]


#: A listed survivor whose reason starts so cannot be told apart under the tool (not by a test
#: either); it leaves the denominator like an equivalent one and the report says which it is.
NOT_MEASURABLE = "Not measurable"
# The direct recheck's time limit per mutant: this many times the unmutated tests' time, and
# at least DIRECT_TIMEOUT_MIN_S (a mutant that loops forever, e.g. a loop counter no longer
# advanced, costs this much and counts as detected: "timeout").
DIRECT_TIMEOUT_FACTOR = 10.0
DIRECT_TIMEOUT_MIN_S = 60.0
#: Statuses that need no look at the mutant: a test caught it, or it was never run.
NOT_REPORTED = ("killed", "timeout", "skipped", "not checked")


def _slug(module: str) -> str:
    return module.replace("/", "_").removesuffix(".py")


def result_path(module: str) -> Path:
    return OUT / "results" / f"{_slug(module)}.json"


def save_result(module: str, result: dict) -> None:
    path = result_path(module)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(path)


def mutmut_path() -> str:
    return str(Path(sys.executable).with_name("mutmut"))


def work_dir(module: str) -> Path:
    return OUT / "work" / _slug(module)


def copy_tracked(work: Path) -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "-z", *PACKAGES], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    for name in [*filter(None, tracked.split("\0")), "pyproject.toml"]:
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, work / name)
        mutated_copy = work / "mutants" / name
        if name.startswith("tests/") and mutated_copy.parent.exists():
            shutil.copy2(ROOT / name, mutated_copy)  # mutmut runs the tests from mutants/


def can_recheck(module: str) -> bool:
    """A kept result whose work copy of the module is the current source (same mutants)."""
    copy = work_dir(module) / module
    return (
        result_path(module).exists()
        and (work_dir(module) / "mutants").exists()
        and copy.exists()
        and copy.read_bytes() == (ROOT / module).read_bytes()
    )


def run_module(module: str, tests: list[str], mutmut: str, only: list[str] | None = None) -> dict:
    """Mutate ``module`` (all mutants, or only the names in ``only`` in the kept work copy)."""
    work = work_dir(module)
    if only is None:
        shutil.rmtree(work, ignore_errors=True)
    else:
        # Tests were edited since: mutmut's map from functions to tests names tests that may no
        # longer exist (its clean run then fails), so it is rebuilt; the results are kept.
        (work / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)
    copy_tracked(work)
    selection = "\n    ".join(tests)
    also_copy = "\n    ".join(PACKAGES)
    (work / "setup.cfg").write_text(
        f"[mutmut]\nsource_paths = {module}\nprocess_isolation = forkserver\n"
        f"pytest_add_cli_args_test_selection =\n"
        f"    {selection}\nalso_copy =\n    {also_copy}\n"
    )
    # Workers fork from a server that has only collected the tests (process_isolation =
    # forkserver): forked from mutmut's main process, which has run the suite, a worker that
    # reaches an FFT deadlocks in MKL's OpenMP pool (measured: torch.fft.rfft in
    # reverb._fft_convolve waits forever at 0 % CPU), and the wall-clock limit would then count
    # a surviving mutant as a timeout, detected. One thread per worker: two run at once.
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    if "numba" in (ROOT / module).read_text():
        env["NUMBA_DISABLE_JIT"] = "1"
    else:
        env.pop("NUMBA_DISABLE_JIT", None)
    start = time.monotonic()
    with open(work / "mutmut.log", "w") as log:
        subprocess.run(
            [mutmut, "run", "--max-children", str(os.cpu_count() or 1), *(only or [])],
            cwd=work,
            stdout=log,
            stderr=log,
            env=env,
        )
    return collect(module, tests, mutmut, time.monotonic() - start, "NUMBA_DISABLE_JIT" not in env)


def show(mutmut: str, work: Path, name: str) -> str:
    """mutmut's diff of mutant ``name`` in the work copy ``work``."""
    return subprocess.run([mutmut, "show", name], cwd=work, capture_output=True, text=True).stdout


def diff_lines(diff: str) -> tuple[list[str], list[str], list[str]]:
    """``(body, removed, added)`` of a mutant's diff: its changed lines with their +/- marks, and
    the removed and added lines without them (indentation kept)."""
    body = [ln for ln in diff.splitlines() if ln[:1] in "+-" and ln[:3] not in ("+++", "---")]
    return (
        body,
        [ln[1:] for ln in body if ln.startswith("-")],
        [ln[1:] for ln in body if ln.startswith("+")],
    )


def collect(module: str, tests: list[str], mutmut: str, wall: float, jit: bool) -> dict:
    """The result of the work copy's mutmut run (a run cut short keeps its unchecked mutants
    as "not checked", which --recheck runs)."""
    work = work_dir(module)
    meta_file = work / "mutants" / f"{module}.meta"
    if not meta_file.exists():
        raise SystemExit(f"mutmut produced no results for {module}; see {work / 'mutmut.log'}")
    codes = json.loads(meta_file.read_text())["exit_code_by_key"]
    source = (ROOT / module).read_text().splitlines()
    mutants = []
    for name, code in sorted(codes.items()):
        entry = {"name": name, "status": status_of(code)}
        if entry["status"] not in NOT_REPORTED:
            body, removed, added = diff_lines(show(mutmut, work, name))
            removed, added = [ln.strip() for ln in removed], [ln.strip() for ln in added]
            entry["line"] = next(
                (i + 1 for i, text in enumerate(source) if removed and text.strip() == removed[0]),
                None,
            )
            entry["original"] = removed[0] if removed else ""
            entry["mutated"] = added[0] if added else ""
            entry["diff"] = "\n".join(body)
        mutants.append(entry)
    from mutmut import __version__ as mutmut_version

    return {
        "module": module,
        "tests": tests,
        "mutmut": mutmut_version,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "wall_s": round(wall, 1),
        "numba_jit": jit,
        "mutants": mutants,
    }


def scores(detected: int, checked: int, equivalent: int) -> tuple[float, float]:
    """(score, net score) in %: detected / checked, and with the equivalents left out."""
    return 100.0 * detected / max(checked, 1), 100.0 * detected / max(checked - equivalent, 1)


def summarize(result: dict, equivalent: list[dict[str, str]]) -> dict:
    counts: dict[str, int] = {}
    listed = 0
    for mutant in result["mutants"]:
        counts[mutant["status"]] = counts.get(mutant["status"], 0) + 1
        if equivalent_reason(result["module"], mutant, equivalent):
            listed += 1
    detected = counts.get("killed", 0) + counts.get("timeout", 0)
    checked = len(result["mutants"]) - counts.get("skipped", 0) - counts.get("not checked", 0)
    score, score_net = scores(detected, checked, listed)
    return {
        "counts": counts,
        "detected": detected,
        "checked": checked,
        "equivalent": listed,
        "score": score,
        "score_net": score_net,
    }


def write_report(equivalent: list[dict[str, str]]) -> Path:
    results = [json.loads(p.read_text()) for p in sorted((OUT / "results").glob("*.json"))]
    order = list(module_table())
    results.sort(key=lambda r: order.index(r["module"]) if r["module"] in order else len(order))
    lines = [
        "# Mutation testing report (`./run mutate`)",
        "",
        "Detected = killed by a test or timed out; score = detected / checked; net score leaves "
        "out the survivors listed in `tests/mutation_equivalent.toml` (equivalent, or not "
        "measurable under mutmut, each with its reason).",
        "",
        "| module | mutants | checked | killed | timeout | survived | no tests | equivalent "
        "| score | net score | wall time | run |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    total = {"detected": 0, "checked": 0, "equivalent": 0, "wall": 0.0}
    for result in results:
        s = summarize(result, equivalent)
        c = s["counts"]
        lines.append(
            f"| {result['module']} | {len(result['mutants'])} | {s['checked']} "
            f"| {c.get('killed', 0)} | {c.get('timeout', 0)} | {c.get('survived', 0)} "
            f"| {c.get('no tests', 0)} "
            f"| {s['equivalent']} | {s['score']:.1f} % | {s['score_net']:.1f} % "
            f"| {result['wall_s']:.0f} s | {result['date'][:10]} |"
        )
        for key in ("detected", "checked", "equivalent"):
            total[key] += s[key]
        total["wall"] += result["wall_s"]
    ran = {r["module"] for r in results}
    lines += [f"| {m} | not run yet | | | | | | | | | | |" for m in order if m not in ran]
    if results:
        score, net = scores(total["detected"], total["checked"], total["equivalent"])
        lines.append(
            f"| **all** | | {total['checked']} | {total['detected']} detected | | | "
            f"| {total['equivalent']} | **{score:.1f} %** | **{net:.1f} %** "
            f"| {total['wall'] / 60:.0f} min | |"
        )
    lines += ["", "## Mutants not detected", ""]
    for result in results:
        for mutant in result["mutants"]:
            if mutant["status"] in NOT_REPORTED:
                continue
            reason = equivalent_reason(result["module"], mutant, equivalent)
            if not reason:
                tag = mutant["status"]
            elif reason.startswith(NOT_MEASURABLE):
                tag = "not measurable: " + reason[len(NOT_MEASURABLE) :].lstrip(" :")
            else:
                tag = f"equivalent: {reason}"
            lines += [
                f"### {result['module']}:{mutant.get('line') or '?'} `{mutant['name']}`",
                "",
                tag,
                "",
                "```diff",
                mutant.get("diff", ""),
                "```",
                "",
            ]
    report = OUT / "REPORT.md"
    report.parent.mkdir(parents=True, exist_ok=True)
    tmp = report.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(report)
    return report


def mutant_block(module: str, mutant: dict, mutmut: str) -> tuple[int, int, list[str]] | None:
    """Where a mutant of one or more contiguous lines goes: ``(first line, number of lines
    replaced, the replacement lines)``, the replacement indented like the source (mutmut shows a
    method's lines one level less); None if the removed lines are not found once."""
    diff = mutant.get("diff")
    if diff is None:  # a mutant never reported: ask mutmut's work copy
        diff = show(mutmut, work_dir(module), mutant["name"])
    _, removed, added = diff_lines(diff)
    if not removed:
        return None
    source = (ROOT / module).read_text().splitlines()
    want = [ln.strip() for ln in removed]
    n = len(want)
    hits = [i for i in range(len(source) - n + 1)
            if [t.strip() for t in source[i : i + n]] == want]  # fmt: skip
    if len(hits) != 1:
        return None
    first = hits[0]

    def indent(text: str) -> str:
        return text[: len(text) - len(text.lstrip())]

    shown, actual = indent(removed[0]), indent(source[first])
    extra = actual[: len(actual) - len(shown)] if actual.endswith(shown) else ""
    return first + 1, n, [extra + ln if ln.strip() else ln for ln in added]


def direct_recheck(module: str, tests: list[str], result: dict, names: list[str]) -> dict:
    """Recheck one-line mutants without mutmut: write each into a copy of the tracked files and
    run the module's test files there (``pytest -x``), one mutant at a time. The same mutation
    and the same tests as mutmut's, without its per-mutant trampolines and fork server (about
    3x faster on the normalizer's tests, whose fixtures are rebuilt for every mutant either way);
    a mutant of several contiguous lines is written in place of those lines. The unmutated
    tests run first (they must pass); a mutant whose tests run past ``DIRECT_TIMEOUT_FACTOR``
    times their time is a timeout."""
    from tqdm import tqdm

    work = OUT / "direct" / _slug(module)
    shutil.rmtree(work, ignore_errors=True)
    copy_tracked(work)
    target = work / module
    pristine = target.read_text()
    lines = pristine.splitlines(keepends=True)
    by_name = {m["name"]: m for m in result["mutants"]}
    env = dict(os.environ)
    env.pop("MUTANT_UNDER_TEST", None)
    pytest = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    start = time.monotonic()
    clean = subprocess.run(pytest, cwd=work, env=env, capture_output=True, text=True)
    if clean.returncode != 0:
        tail = "\n".join((clean.stdout + clean.stderr).splitlines()[-15:])
        raise SystemExit(f"{module}: the tests fail without a mutant; fix them first:\n{tail}")
    limit = max(DIRECT_TIMEOUT_MIN_S, DIRECT_TIMEOUT_FACTOR * (time.monotonic() - start))
    changed = 0
    for name in tqdm(names, desc=f"direct recheck {module}", unit="mutant"):
        mutant = by_name[name]
        block = mutant_block(module, mutant, mutmut_path())
        if block is None:
            continue
        line, count, replacement = block
        text = lines[: line - 1] + [ln + "\n" for ln in replacement] + lines[line - 1 + count :]
        target.write_text("".join(text))
        try:
            proc = subprocess.run(pytest, cwd=work, env=env, capture_output=True, timeout=limit)
            status = "survived" if proc.returncode == 0 else "killed"
        except subprocess.TimeoutExpired:
            status = "timeout"
        finally:
            target.write_text(pristine)
        mutant.update(status=status, line=line, checked_by="direct")
        if count == 1 and len(replacement) == 1:
            original = lines[line - 1].rstrip("\n")
            mutant.update(
                original=original.strip(),
                mutated=replacement[0].strip(),
                diff=f"-{original}\n+{replacement[0]}",
            )
        changed += 1
        save_result(module, result)  # kept mutant by mutant: a run cut short loses nothing
    result["wall_s"] = round(result["wall_s"] + time.monotonic() - start, 1)
    print(f"{module}: {changed} of {len(names)} mutants rechecked directly", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./run mutate", description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="modules to mutate (default: all listed)")
    parser.add_argument(
        "--report-only", action="store_true", help="rebuild REPORT.md from the kept results"
    )
    parser.add_argument(
        "--survivors-only",
        action="store_true",
        help="with --recheck: leave the mutants a cut-short run never checked for later",
    )
    parser.add_argument(
        "--collect",
        action="store_true",
        help="keep the results of the modules' work copies as they stand (e.g. a run cut short)",
    )
    parser.add_argument(
        "--direct",
        action="store_true",
        help="with --recheck: recheck one-line mutants by editing a copy of the source and "
        "running the module's test files (no mutmut; faster where fixtures dominate)",
    )
    parser.add_argument(
        "--recheck",
        action="store_true",
        help="rerun only the mutants not detected last time, against the current tests, where "
        "the module's source is unchanged since its kept run (otherwise all its mutants)",
    )
    args = parser.parse_args(argv)
    table = module_table()
    modules = args.modules or list(table)
    unknown = [m for m in modules if m not in table]
    if unknown:
        parser.error(f"no [tool.mixfx.mutation] entry for {unknown}; known: {list(table)}")
    equivalent = load_equivalent()
    if args.collect:
        for module in modules:
            if (work_dir(module) / "mutants" / f"{module}.meta").exists():
                result = collect(module, table[module], mutmut_path(), 0.0, True)
                if result_path(module).exists():  # keep the wall time of the kept run
                    result["wall_s"] = json.loads(result_path(module).read_text())["wall_s"]
                save_result(module, result)
    elif not args.report_only:
        mutmut = mutmut_path()
        for module in modules:
            # A direct recheck finds each mutant's line by its text in the current source, so
            # an edit elsewhere in the module (a docstring) does not force a full mutmut run.
            direct_ok = args.direct and result_path(module).exists()
            if args.recheck and (can_recheck(module) or direct_ok):
                kept = json.loads(result_path(module).read_text())
                skip = NOT_REPORTED if args.survivors_only else NOT_REPORTED[:-1]
                names = [  # listed equivalents need no second look
                    m["name"]
                    for m in kept["mutants"]
                    if m["status"] not in skip and not equivalent_reason(module, m, equivalent)
                ]
                result = kept
                if names and args.direct:
                    result = direct_recheck(module, table[module], kept, names)
                elif names:
                    fresh = run_module(module, table[module], mutmut, only=names)
                    rerun = set(names)  # the others keep their kept status
                    by_name = {m["name"]: m for m in fresh["mutants"] if m["name"] in rerun}
                    result["mutants"] = [by_name.get(m["name"], m) for m in kept["mutants"]]
                    result["date"] = fresh["date"]
                    result["wall_s"] = round(kept["wall_s"] + fresh["wall_s"], 1)
            else:
                result = run_module(module, table[module], mutmut)
            save_result(module, result)
            s = summarize(result, equivalent)
            print(
                f"{module}: {s['score']:.1f} % of {s['checked']} mutants detected "
                f"({s['equivalent']} equivalent) in {result['wall_s']:.0f} s",
                flush=True,
            )
    print(f"report: {write_report(equivalent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Judges one Autobahn run: compares kosoku's per-case results with the
committed expectations in tests/autobahn/expected.json.

.ci/autobahn runs it (with the virtualenv's Python, so that it can ask
which kosoku ran) after kosoku has written its report directory:

    python check.py EXPECTED.json REPORT_DIR RESULTS.json

kosoku's own exit code cannot judge the run: it is 1 whenever a case is
not OK, NON-STRICT or INFORMATIONAL, and the compression cases (12.x,
13.x) are UNIMPLEMENTED by design, since switchboard offers no
permessage-deflate. So every case is checked against its own entry, and
the expected file itself is held to the conformance policy, so that it
cannot be "fixed" by writing a failure into it:

- core cases (1.x-10.x) may only expect OK, NON-STRICT or INFORMATIONAL,
  and a closing handshake of OK or INFORMATIONAL;
- compression cases (12.x, 13.x) may only expect UNIMPLEMENTED, and a case
  that ends so must have had no Sec-WebSocket-Extensions in the server's
  handshake answer (UNIMPLEMENTED is honest only if nothing was offered).

Writes RESULTS.json (case id -> what happened), prints the counts and a
line "autobahn: N passed, M failed"; exits 0 if every case ended as
expected, 1 if some did not (listing them), 2 if the inputs are unusable.
Standard library only.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from importlib import metadata
from pathlib import Path

CORE_BEHAVIORS = {"OK", "NON-STRICT", "INFORMATIONAL"}
CORE_CLOSES = {"OK", "INFORMATIONAL"}
COMPRESSION_GROUPS = {12, 13}


class Unusable(Exception):
    """The inputs cannot be judged: missing files, or an expected file that
    breaks the policy above."""


def group(case_id: str) -> int:
    """`6.4.1` -> 6."""
    return int(case_id.split(".")[0])


def case_order(case_id: str) -> list[int]:
    """Numeric order: 1.2.10 after 1.2.9."""
    return [int(part) for part in case_id.split(".")]


def load_expected(path: Path) -> dict:
    """Reads expected.json and checks it against the policy."""
    expected = json.loads(path.read_text())
    installed = metadata.version("kosoku")
    if expected["kosoku"] != installed:
        raise Unusable(
            f"{path} was written for kosoku {expected['kosoku']}, "
            f"but kosoku {installed} ran: re-check every case for the new version"
        )
    for case_id, entry in expected["cases"].items():
        behaviors, closes = set(entry["behavior"]), set(entry["behaviorClose"])
        if group(case_id) in COMPRESSION_GROUPS:
            allowed_behaviors, allowed_closes = {"UNIMPLEMENTED"}, CORE_CLOSES
        else:
            allowed_behaviors, allowed_closes = CORE_BEHAVIORS, CORE_CLOSES
        if not behaviors or not behaviors <= allowed_behaviors:
            raise Unusable(
                f"{path}: case {case_id} expects behaviour {sorted(behaviors)}; "
                f"the policy allows only {sorted(allowed_behaviors)}"
            )
        if not closes or not closes <= allowed_closes:
            raise Unusable(
                f"{path}: case {case_id} expects close {sorted(closes)}; "
                f"the policy allows only {sorted(allowed_closes)}"
            )
    return expected["cases"]


def load_results(report: Path) -> dict:
    """Reads kosoku's index.json: case id -> its summary and its case file."""
    index_path = report / "index.json"
    if not index_path.is_file():
        raise Unusable(f"{index_path} is missing: kosoku wrote no report (see its log)")
    index = json.loads(index_path.read_text())
    if len(index) != 1:
        raise Unusable(f"{index_path} holds {len(index)} agents, expected one")
    (cases,) = index.values()
    return cases


def offered_extensions(report: Path, summary: dict) -> str | None:
    """The Sec-WebSocket-Extensions the server answered with in that case's
    handshake, if any."""
    case = json.loads((report / summary["reportfile"]).read_text())
    for line in case.get("httpResponse", "").splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() == "sec-websocket-extensions":
            return value.strip()
    return None


def judge(expected: dict, results: dict, report: Path) -> list[str]:
    """Every difference between what was expected and what happened."""
    problems = []
    for case_id in sorted(set(expected) - set(results), key=case_order):
        problems.append(f"{case_id}: expected in the run, but kosoku did not report it")
    for case_id in sorted(set(results) - set(expected), key=case_order):
        summary = results[case_id]
        problems.append(
            f"{case_id}: not in the expected file "
            f"(ended {summary['behavior']} / close {summary['behaviorClose']})"
        )
    for case_id in sorted(set(expected) & set(results), key=case_order):
        want, got = expected[case_id], results[case_id]
        as_expected = (
            got["behavior"] in want["behavior"]
            and got["behaviorClose"] in want["behaviorClose"]
        )
        if not as_expected:
            case = json.loads((report / got["reportfile"]).read_text())
            problems.append(
                f"{case_id}: ended {got['behavior']} / close {got['behaviorClose']} "
                f"(close code {got['remoteCloseCode']}), expected "
                f"{' or '.join(want['behavior'])} / close {' or '.join(want['behaviorClose'])}: "
                f"{case.get('result')} {case.get('resultClose')}"
            )
        if got["behavior"] == "UNIMPLEMENTED":
            extensions = offered_extensions(report, got)
            if extensions is not None:
                problems.append(
                    f"{case_id}: UNIMPLEMENTED although the server offered {extensions!r}"
                )
    return problems


def summarize(results: dict) -> list[str]:
    """Counts per group and result, and the cases' total run time."""
    counts = Counter(
        (group(case_id), summary["behavior"], summary["behaviorClose"])
        for case_id, summary in results.items()
    )
    lines = ["autobahn: cases by group, behaviour / closing handshake:"]
    for (number, behavior, close), count in sorted(counts.items()):
        lines.append(f"  {number:>2}.x  {count:>4}  {behavior} / {close}")
    totals = Counter(summary["behavior"] for summary in results.values())
    lines.append(
        "autobahn: "
        + ", ".join(f"{count} {behavior}" for behavior, count in sorted(totals.items()))
        + f"; cases' own time {sum(s['duration'] for s in results.values()) / 1000:.1f} s"
    )
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    expected_path, report, results_path = Path(argv[1]), Path(argv[2]), Path(argv[3])
    try:
        expected = load_expected(expected_path)
        results = load_results(report)
    except (Unusable, OSError, ValueError, KeyError) as error:
        print(f"autobahn: cannot judge the run: {error}", file=sys.stderr)
        return 2
    kept = ("behavior", "behaviorClose", "remoteCloseCode", "duration")
    compact = {
        case_id: {key: results[case_id][key] for key in kept}
        for case_id in sorted(results, key=case_order)
    }
    results_path.write_text(json.dumps(compact, indent=1) + "\n")
    print("\n".join(summarize(results)))
    problems = judge(expected, results, report)
    for problem in problems:
        print(f"autobahn: MISMATCH {problem}")
    failed = {problem.split(":")[0] for problem in problems}
    passed = len(set(expected) | set(results)) - len(failed)
    print(f"autobahn: {passed} passed, {len(failed)} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

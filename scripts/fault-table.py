#!/usr/bin/env python3
"""One table of the fault suite's figures, judged against the limits kept in the repository.

    scripts/fault-table.py LOG [THRESHOLDS]

LOG holds the output of the fault tests, whose figures are lines `fault-figure NAME VALUE`
(the last one of a name counts). THRESHOLDS (default scripts/fault-thresholds.txt) holds lines
`NAME <= LIMIT` or `NAME >= LIMIT`, where LIMIT is a number or another figure's name; `#`
starts a comment. Prints every figure with its limit and verdict; exits 1 when a figure is
past its limit or a figure that has a limit is missing (its test did not get that far).
"""

import operator
import re
import sys
from pathlib import Path

FIGURE = re.compile(r"fault-figure (\S+) (-?[0-9.]+|inf|nan)")
OPS = {"<=": operator.le, ">=": operator.ge}


def figures(log):
    found = {}
    for line in Path(log).read_text(errors="replace").splitlines():
        match = FIGURE.search(line)
        if match:
            found[match.group(1)] = float(match.group(2))
    return found


def thresholds(path):
    limits = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 3 or parts[1] not in OPS:
            sys.exit(f"{path}:{number}: expected `NAME <= LIMIT` or `NAME >= LIMIT`: {line}")
        limits[parts[0]] = (parts[1], parts[2])
    return limits


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    root = Path(__file__).resolve().parent
    found = figures(sys.argv[1])
    limits = thresholds(sys.argv[2] if len(sys.argv) == 3 else root / "fault-thresholds.txt")
    failed = 0
    print(f"{'figure':<38} {'value':>10}  {'limit':<34} verdict")
    for name in sorted(set(found) | set(limits)):
        value = found.get(name)
        shown = "missing" if value is None else f"{value:.1f}"
        if name not in limits:
            print(f"{name:<38} {shown:>10}  {'':<34} (no limit)")
            continue
        op, limit_text = limits[name]
        try:
            limit = float(limit_text)
            limit_shown = f"{op} {limit:g}"
        except ValueError:
            limit = found.get(limit_text)
            limit_shown = f"{op} {limit_text}" + ("" if limit is None else f" ({limit:g})")
        if value is None or limit is None:
            verdict = "MISSING"
        elif OPS[op](value, limit):
            verdict = "ok"
        else:
            verdict = "REGRESSION"
        failed += verdict != "ok"
        print(f"{name:<38} {shown:>10}  {limit_shown:<34} {verdict}")
    if failed:
        print(f"fault suite: {failed} figure(s) past their limit or missing")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

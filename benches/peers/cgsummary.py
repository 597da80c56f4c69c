#!/usr/bin/env python3
"""Where the instructions of a kept callgrind profile go (benches/peers/callgrind.sh with KEEP).

    cgsummary.py PROFILE [N]            self instructions per request by function, largest first
    cgsummary.py PROFILE [N] --diff B   what profile B adds or saves per function against PROFILE
    cgsummary.py PROFILE [N] --callers F  inclusive instructions per request of the calls to F,
                                          by calling function

N is the number of measured requests (callgrind.sh sends 3,000). Reads callgrind's text format
directly: self costs are the cost lines of each `fn=` block, and the line after `calls=` is the
inclusive cost of that call.
"""
import collections
import sys


def load(path):
    """(self cost per function, inclusive cost per (caller, callee))."""
    own = collections.Counter()
    calls = collections.Counter()
    fn = cfn = None
    after_call = False
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("fn="):
                fn = line[3:].strip()
            elif line.startswith("cfn="):
                cfn = line[4:].strip()
            elif line.startswith("calls="):
                after_call = True
            elif line[:1].isdigit() or line[:1] in "+-*":
                parts = line.split()
                if len(parts) < 2:
                    continue
                if after_call:
                    calls[(fn, cfn)] += int(parts[1])
                    after_call = False
                else:
                    own[fn] += int(parts[1])
    return own, calls


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    path = argv[1]
    n = int(argv[2]) if len(argv) > 2 and argv[2].isdigit() else 3000
    own, calls = load(path)
    if "--diff" in argv:
        other, _ = load(argv[argv.index("--diff") + 1])
        total = (sum(other.values()) - sum(own.values())) // n
        print(f"{total:+9d}  total per request")
        delta = {k: (other.get(k, 0) - own.get(k, 0)) // n for k in set(own) | set(other)}
        for k, v in sorted(delta.items(), key=lambda kv: -abs(kv[1]))[:50]:
            print(f"{v:+9d}  {k[:150]}")
    elif "--callers" in argv:
        target = argv[argv.index("--callers") + 1]
        by = collections.Counter()
        for (caller, callee), v in calls.items():
            if callee and target in callee:
                by[caller] += v
        for k, v in by.most_common(30):
            print(f"{v // n:9d}  {k[:150]}")
    else:
        print(f"{sum(own.values()) // n:9d}  total per request")
        for k, v in own.most_common(50):
            print(f"{v // n:9d}  {k[:150]}")


if __name__ == "__main__":
    main(sys.argv)

#!/usr/bin/env python3
"""Checks an Autobahn|Testsuite fuzzing-client report against a SockJS raw WebSocket echo.

    check.py REPORT_DIR

Every case must be OK, NON-STRICT or INFORMATIONAL, except where it fails for what the
protocol asks of the raw WebSocket endpoint (PROTOCOL.md §9.2, §9.3), which the report
itself must show:

- binary: SockJS messages are text. A binary message that is UTF-8 comes back as text (the
  case sent binary frames, only text frames came back, and the close was normal); any other
  closes the connection with 1003.
- size: a message over the server's max_message_size (256 KiB) closes it with 1009 (the
  case sent more than that).

Prints a line per case that fails otherwise, then a summary; exits 1 if there was any.
"""

import json
import os
import re
import sys
from collections import Counter

PASSING = {"OK", "NON-STRICT", "INFORMATIONAL"}
MAX_MESSAGE = 256 * 1024


def message_size(case):
    """The largest message the case sends: what it sent, or (for a message cut off at its
    header, as the server may) what its description says, "length 4 * 2**20"."""
    sent = sum(int(size) * count for size, count in case.get("txOctetStats", {}).items())
    said = re.search(r"length (\d+) \* 2\*\*(\d+)", case.get("description", ""))
    return max(sent, int(said.group(1)) << int(said.group(2)) if said else 0)


def why_allowed(case):
    """The protocol's reason for a case that did not pass, or None."""
    sent = case.get("txFrameStats", {})
    came = case.get("rxFrameStats", {})
    code = case.get("remoteCloseCode")
    if "2" in sent and code == 1003:
        return "binary, not UTF-8: 1003"
    if "2" in sent and "1" in came and "2" not in came and code in (1000, 1001, None):
        return "binary echoed as text"
    if code == 1009 and message_size(case) > MAX_MESSAGE:
        return "over max_message_size: 1009"
    return None


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    report = sys.argv[1]
    with open(os.path.join(report, "index.json")) as f:
        index = json.load(f)
    behaviors = Counter()
    allowed = Counter()
    bad = []
    for agent, cases in index.items():
        for case_id, summary in sorted(cases.items(), key=lambda kv: [int(p) for p in kv[0].split(".")]):
            behavior = summary["behavior"]
            behaviors[behavior] += 1
            # The close counts too: a passing exchange whose close failed (or was not
            # clean) is a failure.
            if behavior in PASSING and summary.get("behaviorClose") in PASSING:
                continue
            with open(os.path.join(report, summary["reportfile"])) as f:
                case = json.load(f)
            reason = why_allowed(case)
            if reason is None:
                bad.append(
                    f"{agent} {case_id}: {behavior} / close {summary.get('behaviorClose')} "
                    f"(close code {case.get('remoteCloseCode')}): {case.get('result')} "
                    f"{case.get('resultClose')}; {case.get('description', '')[:100]!r}"
                )
            else:
                allowed[reason] += 1
    for line in bad:
        print("FAIL", line)
    total = sum(behaviors.values())
    kinds = ", ".join(f"{n} {b}" for b, n in behaviors.most_common())
    policy = ", ".join(f"{n} {r}" for r, n in allowed.most_common()) or "none"
    print(f"autobahn: {total} cases ({kinds}); not passed by the protocol's rules: {policy}; "
          f"{len(bad)} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

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

import codecs
import json
import os
import re
import sys
from collections import Counter

PASSING = {"OK", "NON-STRICT", "INFORMATIONAL"}
MAX_MESSAGE = 256 * 1024


def declared_size(case):
    """The size of the message the case sends as its description says it ("payload of
    length 4 * 2**20"): the cases that go past a size bound send one such message (or
    several alike), which a server may refuse at the first frame's header."""
    said = re.search(r"length (\d+) \* 2\*\*(\d+)", case.get("description", ""))
    return int(said.group(1)) << int(said.group(2)) if said else 0


def sent_binary(case):
    """The binary frames' payloads the wire log shows (the suite logs small cases only),
    and whether the case sent any binary frame at all."""
    payloads = []
    for entry in case.get("wirelog", []):
        # ["TF", [length, payload], opcode, fin, ...]: a frame the suite sent.
        if entry[0] == "TF" and len(entry) > 2 and entry[2] == 2:
            payloads.append(logged_bytes(entry[1][1])[0])
    return payloads, "2" in case.get("txFrameStats", {})


def logged_bytes(data):
    """A payload as the suite logs it ("0x" and hex for binary, the text otherwise, " ..."
    after it where cut short): its bytes, and whether it was cut."""
    cut = data.endswith(" ...")
    if cut:
        data = data[: -len(" ...")]
    if data.startswith("0x"):
        digits = data[2:]
        return bytes.fromhex(digits[: len(digits) // 2 * 2]), cut
    return data.encode("utf-8", "surrogatepass"), cut


def same_payloads(expected, received):
    """Whether two logged message lists carry the same payloads, whatever their opcode
    (compared as far as the log has them where it cut one short)."""
    if len(expected) != len(received):
        return False
    for e, r in zip(expected, received):
        (a, a_cut), (b, b_cut) = logged_bytes(e[1]), logged_bytes(r[1])
        n = min(len(a), len(b)) if a_cut or b_cut else None
        if a[:n] != b[:n]:
            return False
    return True


def is_utf8(data):
    """Whether `data` is UTF-8, but for a character the log may have cut at its end."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(data, final=False)
        return True
    except UnicodeDecodeError:
        return False


def why_allowed(case):
    """The protocol's reason for a case that did not pass, or None."""
    payloads, binary = sent_binary(case)
    came = case.get("rxFrameStats", {})
    code = case.get("remoteCloseCode")
    if binary and code == 1003:
        # Closed for binary that is not UTF-8: the logged payloads (if any) must show one.
        if not payloads or not all(is_utf8(p) for p in payloads):
            return "binary, not UTF-8: 1003"
        return None
    if binary and "1" in came and "2" not in came and code in (1000, 1001):
        # Echoed as text, and closed cleanly: where the suite logged what it expected and
        # what came, the same messages but for their opcode.
        received = [m for m in case.get("received") or [] if m[0] == "message"]
        expected = [m for m in case.get("expected", {}).get("OK", []) if m[0] == "message"]
        if received and expected and not same_payloads(expected, received):
            return None
        return "binary echoed as text"
    if code == 1009 and declared_size(case) > MAX_MESSAGE:
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
    if total == 0:
        print("autobahn: the report has no cases (AUTOBAHN_CASES matched none?)")
        return 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

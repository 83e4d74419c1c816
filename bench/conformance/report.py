"""Conformance results as a table, a JSON object and JUnit XML."""
from __future__ import annotations

import os
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from bench.conformance.core import Outcome

OUTCOMES = ("pass", "fail", "skip", "error")


def sections(outcomes: list[Outcome]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for o in outcomes:
        s = out.setdefault(o.check.section, {"checks": 0, **{k: 0 for k in OUTCOMES}})
        s["checks"] += 1
        s[o.outcome] += 1
    return out


def counts(outcomes: list[Outcome]) -> dict[str, int]:
    c = Counter(o.outcome for o in outcomes)
    return {k: c.get(k, 0) for k in OUTCOMES}


def table(outcomes: list[Outcome]) -> str:
    """One line per check, then expected / actual under every failure."""
    w = max((len(o.check.id) for o in outcomes), default=4)
    lines = [f"{'check':<{w}}  result  requirement"]
    for o in outcomes:
        lines.append(f"{o.check.id:<{w}}  {o.outcome.upper():<6}  {o.check.requirement}")
        if o.outcome in ("fail", "error", "skip") and o.message:
            lines.append(f"{'':<{w}}          {o.message}")
        if o.outcome == "fail" and (o.expected is not None or o.actual is not None):
            lines.append(f"{'':<{w}}          expected: {o.expected!r}")
            lines.append(f"{'':<{w}}          actual:   {o.actual!r}")
    c = counts(outcomes)
    lines.append(f"{len(outcomes)} checks: {c['pass']} passed, {c['fail']} failed, {c['skip']} skipped, "
                 f"{c['error']} errors")
    return "\n".join(lines)


def write_junit(path: Path, outcomes: list[Outcome], suite: str, properties: dict[str, str]) -> None:
    """JUnit XML (one testsuite per spec section), written atomically."""
    root = ET.Element("testsuites", name=suite, tests=str(len(outcomes)),
                      failures=str(counts(outcomes)["fail"]), errors=str(counts(outcomes)["error"]),
                      skipped=str(counts(outcomes)["skip"]),
                      time=f"{sum(o.duration_s for o in outcomes):.3f}")
    props = ET.SubElement(root, "properties")
    for k, v in properties.items():
        ET.SubElement(props, "property", name=k, value=str(v))
    for name, _ in sections(outcomes).items():
        mine = [o for o in outcomes if o.check.section == name]
        c = counts(mine)
        ts = ET.SubElement(root, "testsuite", name=name, tests=str(len(mine)), failures=str(c["fail"]),
                           errors=str(c["error"]), skipped=str(c["skip"]),
                           time=f"{sum(o.duration_s for o in mine):.3f}")
        for o in mine:
            tc = ET.SubElement(ts, "testcase", classname=f"conformance.{name}", name=o.check.id,
                               time=f"{o.duration_s:.3f}")
            ET.SubElement(tc, "system-out").text = o.check.requirement
            if o.outcome == "fail":
                el = ET.SubElement(tc, "failure", message=o.message)
                el.text = f"requirement: {o.check.requirement}\nexpected: {o.expected!r}\nactual: {o.actual!r}"
            elif o.outcome == "error":
                ET.SubElement(tc, "error", message=o.message)
            elif o.outcome == "skip":
                ET.SubElement(tc, "skipped", message=o.message)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".junit-", dir=path.parent if str(path.parent) else ".")
    try:
        with os.fdopen(fd, "wb") as f:
            ET.ElementTree(root).write(f, encoding="utf-8", xml_declaration=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

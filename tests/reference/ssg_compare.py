#!/usr/bin/env python3
"""Helpers of compare_oscap.sh: read oscap ARF results and Parc JSON reports,
join them through ssg_mapping.toml, print the tables.

Subcommands (all print to stdout; exit 1 on bad input):
  table    --mapping M --level L --parc P.json --arf A.xml [--summary OUT.json]
           rule-by-rule agreement of one evaluation of the same tree
  coverage --mapping M --arf A.xml
           profile rules that are neither mapped nor listed as unmapped
  changes  --mapping M --level L --arf-before A --arf-after B --parc-after P.json
           how oscap's verdicts changed after `parc-agent policy apply`
  same     A B
           exit 1 unless both results (ARF .xml or Parc .json) give every rule the same verdict
  snapshot ROOT OUT   /   diffsnap A B
           a tree listing (type, mode, owner, sha256 or link target) and its comparison
  timing   FILE
           medians and ratio of the "tool level seconds" lines of FILE
"""
import argparse
import hashlib
import json
import os
import stat
import statistics
import sys
import tomllib
import xml.etree.ElementTree as ET

XCCDF = "{http://checklists.nist.gov/xccdf/1.2}"
PREFIX = "xccdf_org.ssgproject.content_rule_"

# oscap result -> the verdict words Parc uses
OSCAP_VERDICT = {"pass": "pass", "fail": "fail", "notapplicable": "na", "notchecked": "notchecked",
                 "error": "error", "unknown": "error", "informational": "notchecked", "fixed": "pass"}


def short(ssg_id):
    return ssg_id[len(PREFIX):] if ssg_id.startswith(PREFIX) else ssg_id


def load_mapping(path):
    with open(path, "rb") as f:
        m = tomllib.load(f)
    entries = m.get("map", [])
    seen = set()
    for e in entries:
        if e["parc"] in seen:
            sys.exit(f"{path}: {e['parc']} is mapped twice")
        seen.add(e["parc"])
        for s in e["ssg"]:
            if not s.startswith(PREFIX):
                sys.exit(f"{path}: {e['parc']}: '{s}' is not an SSG rule id ({PREFIX}...)")
    return m


def load_arf(path):
    """Rule id -> oscap result of the (only) TestResult in an ARF file."""
    root = ET.parse(path).getroot()
    out = {}
    for rr in root.iter(XCCDF + "rule-result"):
        out[rr.get("idref")] = rr.find(XCCDF + "result").text
    if not out:
        sys.exit(f"{path}: no rule results")
    return out


def load_parc(path):
    with open(path) as f:
        rep = json.load(f)
    return {r["id"]: r for r in rep["rules"]}


def combine(verdicts):
    """One verdict for a Parc rule mapped to several SSG rules: the worst one."""
    for v in ("error", "fail", "pass", "notchecked"):
        if v in verdicts:
            return v
    return "na"


def explanation(entry, phase, parc, oscap):
    for d in entry.get("disagreement", []):
        if d.get("phase", "check") == phase and d["parc"] == parc and d["oscap"] == oscap:
            return d
    return None


def classify(entry, phase, parc, oscap, report):
    """agree | vacuous | prerequisite | explained | UNEXPLAINED, and the explanation if any.

    vacuous: oscap passes because the object it checks does not exist, Parc
    says not applicable for the same reason. prerequisite: Parc says not
    applicable because what the rule configures is not installed, and reports
    that once, as the failing rule named by `prerequisite`; oscap fails each
    rule instead."""
    if parc == oscap:
        return "agree", None
    if parc == "na" and oscap == "pass" and entry.get("vacuous"):
        return "vacuous", entry["vacuous"]
    pre = entry.get("prerequisite")
    if parc == "na" and oscap == "fail" and pre and report.get(pre, {}).get("status") == "fail":
        return "prerequisite", f"{pre} fails, and Parc reports it there"
    d = explanation(entry, phase, parc, oscap)
    if d:
        return "explained", d["why"]
    return "UNEXPLAINED", None


def cmd_table(a):
    m = load_mapping(a.mapping)
    arf = load_arf(a.arf)
    parc = load_parc(a.parc)
    rows, counts = [], {"agree": 0, "vacuous": 0, "prerequisite": 0, "explained": 0, "UNEXPLAINED": 0}
    skipped = []
    for e in m["map"]:
        pr = parc.get(e["parc"])
        selected = [s for s in e["ssg"] if arf.get(s, "notselected") != "notselected"]
        if pr is None and not selected:
            continue  # neither side selects it at this level
        if pr is None or not selected:
            skipped.append(e["parc"] + (" (SSG selects it at this level, Parc's level is higher)" if pr is None
                                        else " (Parc selects it at this level, SSG's profile does not)"))
            continue
        per = [OSCAP_VERDICT.get(arf[s], "error") for s in selected]
        ov = combine(per)
        pv = pr["status"] + ("*" if pr.get("manual") else "")
        cls, why = classify(e, "check", pr["status"], ov, parc)
        counts[cls] += 1
        shown_ov = ov if len(set(per)) <= 1 else ov + " (" + ",".join(per) + ")"
        rows.append((e["parc"], ", ".join(short(s) for s in selected), pv, shown_ov, cls, why))
    w0 = max(len(r[0]) for r in rows)
    print(f"{'Parc rule':<{w0}}  {'parc':<6} {'oscap':<16} {'agree?':<12} SSG rule(s) ({PREFIX} omitted)")
    for r in rows:
        print(f"{r[0]:<{w0}}  {r[2]:<6} {r[3]:<16} {r[4]:<12} {r[1]}")
    print("(parc 'fail*' = failing, manual: no automatic remediation)")
    notes = [(r[0], r[4], r[5]) for r in rows if r[4] != "agree"]
    if notes:
        print("\nDifferent verdicts, and why:")
        for rid, cls, why in notes:
            print(f"  {rid}: {cls}" + (f": {why}" if why else " (add an explanation to the mapping, or fix the rule)"))
    for s in skipped:
        print(f"  not compared: {s}")
    n = len(rows)
    same = counts["agree"]
    eff = same + counts["vacuous"] + counts["prerequisite"]
    print(f"\nAgreement on {n} mapped rules ({a.level}): {eff}/{n} = {100.0 * eff / n:.1f}% "
          f"= {same} identical verdicts + {counts['vacuous']} 'nothing to check' (oscap pass, Parc na) "
          f"+ {counts['prerequisite']} 'prerequisite missing' (oscap fail, Parc na, the prerequisite rule fails); "
          f"identical verdicts only: {100.0 * same / n:.1f}%; {counts['explained']} explained disagreements, "
          f"{counts['UNEXPLAINED']} unexplained")
    if a.summary:
        with open(a.summary, "w") as f:
            json.dump({"level": a.level, "rows": n, **counts, "agreement": 100.0 * eff / n,
                       "identical": 100.0 * same / n}, f)


def cmd_coverage(a):
    m = load_mapping(a.mapping)
    arf = load_arf(a.arf)
    profile = {r for r, v in arf.items() if v != "notselected"}
    mapped = {s for e in m["map"] for s in e["ssg"]}
    unmapped = {u["ssg"] for u in m.get("unmapped_ssg", [])}
    missing = sorted(profile - mapped - unmapped)
    both = sorted(mapped & unmapped)
    print(f"profile rules: {len(profile)}; mapped to Parc rules: {len(profile & mapped)}; "
          f"listed as not expressible: {len(profile & unmapped)}")
    for r in missing:
        print(f"  neither mapped nor listed as unmapped: {r}")
    for r in both:
        print(f"  both mapped and listed as unmapped: {r}")
    return 1 if missing or both else 0


def cmd_changes(a):
    m = load_mapping(a.mapping)
    before, after = load_arf(a.arf_before), load_arf(a.arf_after)
    parc = load_parc(a.parc_after)
    unmapped = {u["ssg"] for u in m.get("unmapped_ssg", [])}
    owner = {}
    for e in m["map"]:
        for s in e["ssg"]:
            owner.setdefault(s, []).append(e)
    moves = {}
    rows = []
    for rule in sorted(before):
        b, f = before[rule], after.get(rule, "missing")
        if b == "notselected":
            continue
        if b != f:
            moves[(b, f)] = moves.get((b, f), 0) + 1
        entries = [e for e in owner.get(rule, []) if e["parc"] in parc]
        statuses = {e["parc"]: parc[e["parc"]]["status"] for e in entries}
        passing = [e for e in entries if statuses[e["parc"]] == "pass"]
        failing = [e["parc"] for e in entries if statuses[e["parc"]] == "fail"]
        parc_after = ",".join(sorted(set(statuses.values()))) or "-"
        note = ""
        if f == "fail" and passing:
            d = None
            for e in passing:
                d = d or explanation(e, "apply", "pass", "fail")
            if d:
                note = "explained: " + d["why"]
            elif failing:
                note = "Parc still fails it too (" + ", ".join(failing) + ")"
            else:
                note = "UNEXPLAINED: Parc passes after apply, oscap still fails"
        elif f == "fail" and entries:
            note = "Parc: " + ", ".join(f"{i} {st}" + ("*" if parc[i].get("manual") else "") for i, st in statuses.items())
            pre = [e["prerequisite"] for e in entries if statuses[e["parc"]] == "na" and e.get("prerequisite")]
            if pre:
                note += f" (its prerequisite {pre[0]} fails)"
        elif f == "fail" and rule in unmapped:
            note = "not expressed in Parc's baseline (see [[unmapped_ssg]])"
        if b != f or note:
            rows.append((short(rule), b, f, parc_after, note))
    print(f"oscap verdicts before -> after `parc-agent policy apply --level {a.level}` (rules whose verdict moved, "
          f"or that still fail; '*' = manual):")
    w = max([len(r[0]) for r in rows] + [10])
    print(f"  {'SSG rule':<{w}}  {'before':<14} {'after':<14} {'parc after':<10} note")
    for r in rows:
        print(f"  {r[0]:<{w}}  {r[1]:<14} {r[2]:<14} {r[3]:<10} {r[4]}")
    total = sum(1 for r in before if before[r] != "notselected")
    fails_b = sum(1 for r in before if before[r] == "fail")
    fails_a = sum(1 for r in after if after[r] == "fail")
    print(f"  summary: {total} rules; fail {fails_b} -> {fails_a}; "
          + "; ".join(f"{b}->{f}: {n}" for (b, f), n in sorted(moves.items())))
    unexplained = sum(1 for r in rows if r[4].startswith("UNEXPLAINED"))
    regressions = moves.get(("pass", "fail"), 0)
    if regressions:
        print(f"  REGRESSIONS: {regressions} rules went from pass to fail")
    if a.summary:
        with open(a.summary, "w") as fh:
            json.dump({"fail_before": fails_b, "fail_after": fails_a, "fail_to_pass": moves.get(("fail", "pass"), 0),
                       "pass_to_fail": regressions, "unexplained": unexplained}, fh)
    return 0


def cmd_same(a):
    def verdicts(path):
        if path.endswith(".json"):
            return {k: r["status"] for k, r in load_parc(path).items()}
        return load_arf(path)
    x, y = verdicts(a.a), verdicts(a.b)
    diff = [(r, x.get(r), y.get(r)) for r in sorted(set(x) | set(y)) if x.get(r) != y.get(r)]
    for r, p, q in diff:
        print(f"  {short(r)}: {p} -> {q}")
    print(f"{len(diff)} rules with a different verdict")
    return 1 if diff else 0


def cmd_snapshot(a):
    out = []
    for dirpath, dirnames, filenames in os.walk(a.root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            rel = "/" + os.path.relpath(p, a.root)
            if stat.S_ISLNK(st.st_mode):
                what = "link " + os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
                what = "file " + h.hexdigest()
            elif stat.S_ISDIR(st.st_mode):
                what = "dir"
            else:
                what = "other"
            out.append(f"{rel}\t{stat.S_IMODE(st.st_mode):o}\t{st.st_uid}:{st.st_gid}\t{what}")
    with open(a.out, "w") as f:
        f.write("\n".join(out) + "\n")
    return 0


def cmd_diffsnap(a):
    def read(p):
        with open(p) as f:
            return dict(line.split("\t", 1) for line in f.read().splitlines() if line)
    x, y = read(a.a), read(a.b)
    diff = sorted(k for k in set(x) | set(y) if x.get(k) != y.get(k))
    for k in diff[:40]:
        print(f"  {k}: {x.get(k, 'absent')} -> {y.get(k, 'absent')}")
    print(f"{len(diff)} paths differ")
    return 1 if diff else 0


def cmd_timing(a):
    times = {}
    with open(a.file) as f:
        for line in f:
            tool, level, secs = line.split()
            times.setdefault(level, {}).setdefault(tool, []).append(float(secs))
    for level, t in times.items():
        o, p = statistics.median(t["oscap"]), statistics.median(t["parc"])
        print(f"  {level:<13} oscap median {o:7.3f} s ({', '.join(f'{x:.3f}' for x in t['oscap'])})   "
              f"parc median {p:7.3f} s ({', '.join(f'{x:.3f}' for x in t['parc'])})   ratio {o / p:6.1f}x")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("table")
    t.add_argument("--mapping", required=True)
    t.add_argument("--level", required=True)
    t.add_argument("--parc", required=True)
    t.add_argument("--arf", required=True)
    t.add_argument("--summary")
    c = sub.add_parser("coverage")
    c.add_argument("--mapping", required=True)
    c.add_argument("--arf", required=True)
    ch = sub.add_parser("changes")
    ch.add_argument("--mapping", required=True)
    ch.add_argument("--level", required=True)
    ch.add_argument("--arf-before", required=True)
    ch.add_argument("--arf-after", required=True)
    ch.add_argument("--parc-after", required=True)
    ch.add_argument("--summary")
    s = sub.add_parser("same")
    s.add_argument("a")
    s.add_argument("b")
    sn = sub.add_parser("snapshot")
    sn.add_argument("root")
    sn.add_argument("out")
    ds = sub.add_parser("diffsnap")
    ds.add_argument("a")
    ds.add_argument("b")
    tm = sub.add_parser("timing")
    tm.add_argument("file")
    a = ap.parse_args()
    fn = {"table": cmd_table, "coverage": cmd_coverage, "changes": cmd_changes, "same": cmd_same,
          "snapshot": cmd_snapshot, "diffsnap": cmd_diffsnap, "timing": cmd_timing}[a.cmd]
    sys.exit(fn(a) or 0)


if __name__ == "__main__":
    main()

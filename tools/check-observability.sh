#!/usr/bin/env bash
# Checks the shipped observability files (docs/operations.md, "Metrics and alerts"):
#   deploy/prometheus/disputes.rules.yml       promtool check rules
#   deploy/prometheus/disputes.rules.test.yml  promtool test rules: every alert fires in one case and stays quiet in another
#   deploy/grafana/disputes.json               valid JSON, unique panel ids, panels not overlapping, the datasource variable
# and that every metric name in the rules', their tests' and the dashboard's expressions is one the service
# exports (deploy/prometheus/metric-names.txt, checked against a real scrape by a Rust test) or a series
# the rules record, and that docs/operations.md ("Metrics and alerts") gives every alert's name and expression.
# Needs promtool (Debian: apt-get install prometheus; tools/install.sh does) and python3 (no modules beyond its own).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rules="$root/deploy/prometheus/disputes.rules.yml"
tests="$root/deploy/prometheus/disputes.rules.test.yml"
names="$root/deploy/prometheus/metric-names.txt"
dashboard="$root/deploy/grafana/disputes.json"
docs="$root/docs/operations.md"
fail() { echo "check-observability: $*" >&2; exit 1; }

command -v promtool >/dev/null 2>&1 || fail "promtool not found (Debian: apt-get install prometheus; tools/install.sh installs it)"
command -v python3 >/dev/null 2>&1 || fail "python3 not found"
for f in "$rules" "$tests" "$names" "$dashboard" "$docs"; do
  [ -f "$f" ] || fail "missing ${f#"$root"/}"
done

promtool check rules "$rules" || fail "promtool check rules ${rules#"$root"/} failed (above)"
promtool test rules "$tests" || fail "promtool test rules ${tests#"$root"/} failed (above)"

python3 - "$rules" "$tests" "$names" "$dashboard" "$docs" <<'PY' || fail "metric names, test coverage, the docs' table or the dashboard: see above"
import json
import re
import sys

rules_path, tests_path, names_path, dashboard_path, docs_path = sys.argv[1:6]
errors = []


def error(msg):
    errors.append(msg)


def yaml_values(path, keys):
    """(key, value, line) for each `key: value` of the given keys, in the subset of YAML these files use:
    plain, single- or double-quoted one-line scalars, and `|`/`>` block scalars (and plain scalars
    continued on more indented lines). PyYAML is not assumed to be installed."""
    lines = open(path, encoding="utf-8").read().split("\n")
    key_re = re.compile(r"^(\s*(?:-\s+)?)(%s):(?:\s+(.*))?$" % "|".join(map(re.escape, keys)))
    out = []
    i = 0
    while i < len(lines):
        m = key_re.match(lines[i])
        if not m:
            i += 1
            continue
        indent, key, value = len(m.group(1)), m.group(2), (m.group(3) or "").strip()
        start = i + 1
        i += 1
        more = []
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
            more.append(lines[i].strip())
            i += 1
        while more and not more[-1]:
            more.pop()
        if value[:1] in ("|", ">"):
            value = "\n".join(more)
        elif value.startswith('"'):
            if more or not value.endswith('"'):
                error(f"{path}:{start}: multi-line double-quoted `{key}:` is not understood here; use a block scalar")
                continue
            value = json.loads(value)
        elif value.startswith("'"):
            if more or not value.endswith("'"):
                error(f"{path}:{start}: multi-line single-quoted `{key}:` is not understood here; use a block scalar")
                continue
            value = value[1:-1].replace("''", "'")
        else:
            value = re.sub(r"\s+#.*$", "", " ".join([value] + [l for l in more if l]))
        out.append((key, value, start))
    return out


KEYWORDS = {"and", "or", "unless", "bool", "by", "without", "on", "ignoring", "group_left", "group_right",
            "offset", "inf", "nan", "atan2", "start", "end"}


def metric_names(expr):
    """The metric names a PromQL expression selects (Grafana's $variables allowed)."""
    e = re.sub(r"label_values\(\s*(.*?)\s*,\s*\w+\s*\)\s*$", r"\1", expr.strip(), flags=re.S)
    e = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', e)  # strings (label values)
    e = re.sub(r"\$\{[^}]*\}|\$\w+", "1", e)  # Grafana variables outside strings
    e = re.sub(r"\{[^}]*\}", "", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)  # ranges and subqueries
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)  # label lists
    e = re.sub(r"\boffset\s+-?\w+", " ", e)
    e = re.sub(r"(?<![\w:])(0x[0-9a-fA-F]+|\d+(\.\d*)?([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?)", " ", e)  # numbers
    found = []
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        name = m.group(0)
        rest = e[m.end():].lstrip()
        if name.lower() in KEYWORDS or rest.startswith("("):  # functions and aggregations
            continue
        found.append(name)
    return found


exported = set()
for n, line in enumerate(open(names_path, encoding="utf-8"), 1):
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    if not re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line):
        error(f"{names_path}:{n}: not a metric name: {line!r}")
    exported.add(line)

# The rules: what they record, and the names their expressions use.
rule_items = yaml_values(rules_path, ["alert", "record", "expr"])
recorded = {v for k, v, _ in rule_items if k == "record"}
alerts = [v for k, v, _ in rule_items if k == "alert"]
exprs = [(v, f"{rules_path}:{line}") for k, v, line in rule_items if k == "expr"]
if len(exprs) != len(alerts) + len(recorded):
    error(f"{rules_path}: found {len(exprs)} expr for {len(alerts)} alerts and {len(recorded)} records; the parser here missed some")
known = exported | recorded

# docs/operations.md's "Metrics and alerts" is the rules' prose source: every alert there by name and
# expression, every recorded series by name.
docs = open(docs_path, encoding="utf-8").read()
section = re.search(r"^## Metrics and alerts\n(.*?)(?=^## |\Z)", docs, re.S | re.M)
section = section.group(1).replace("\\|", "|") if section else ""
if not section:
    error(f"{docs_path}: no section \"## Metrics and alerts\"")
alert_exprs = {}
for (k, v, _), nxt in zip(rule_items, rule_items[1:] + [(None, None, None)]):
    if k == "alert" and nxt[0] == "expr":
        alert_exprs[v] = nxt[1]
for a in alerts:
    if f"`{a}`" not in section:
        error(f"{docs_path}: \"Metrics and alerts\" does not name the alert `{a}`")
    elif f"`{' '.join(alert_exprs.get(a, '').split())}`" not in section:
        error(f"{docs_path}: \"Metrics and alerts\" does not give {a}'s expression `{alert_exprs.get(a)}`")
for r in sorted(recorded):
    if f"`{r}`" not in section and f"`:{r.rsplit(':', 1)[-1]}`" not in section:
        error(f"{docs_path}: \"Metrics and alerts\" does not name the recorded series `{r}`")

# The tests: input series, expected samples, expressions; and every alert both firing and not.
test_items = yaml_values(tests_path, ["series", "labels", "expr", "alertname", "exp_alerts"])
for k, v, line in test_items:
    if k in ("series", "labels", "expr"):
        exprs.append((v, f"{tests_path}:{line}"))
firing, quiet = set(), set()
for (k, v, _), nxt in zip(test_items, test_items[1:] + [(None, None, None)]):
    if k == "alertname":
        if nxt[0] != "exp_alerts":
            error(f"{tests_path}: alertname {v} without exp_alerts")
        elif nxt[1] == "[]":
            quiet.add(v)
        elif nxt[1]:
            firing.add(v)
for a in alerts:
    if a not in firing:
        error(f"{tests_path}: no case where {a} fires")
    if a not in quiet:
        error(f"{tests_path}: no case where {a} does not fire (exp_alerts: [])")
for a in (firing | quiet) - set(alerts):
    error(f"{tests_path}: tests an alert the rules do not define: {a}")

# The dashboard.
try:
    dash = json.load(open(dashboard_path, encoding="utf-8"))
except ValueError as e:
    print(f"check-observability: {dashboard_path} is not valid JSON: {e}", file=sys.stderr)
    sys.exit(1)
variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
ds = variables.get("datasource")
if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
    error(f"{dashboard_path}: no template variable `datasource` of type datasource for prometheus")
inst = variables.get("instance")
if not inst or "label_values(disputes_build_info, instance)" not in json.dumps(inst.get("query")):
    error(f"{dashboard_path}: no template variable `instance` from label_values(disputes_build_info, instance)")
for name, v in variables.items():
    q = v.get("query")
    if v.get("type") == "query":
        exprs.append((q.get("query", "") if isinstance(q, dict) else q, f"{dashboard_path}: variable {name}"))
ids, boxes = set(), []
def walk(panels):
    for p in panels:
        yield p
        yield from walk(p.get("panels", []))
for p in walk(dash.get("panels", [])):
    title = p.get("title", "?")
    pid = p.get("id")
    if not isinstance(pid, int) or pid in ids:
        error(f"{dashboard_path}: panel {title!r}: id {pid!r} missing or not unique")
    ids.add(pid)
    g = p.get("gridPos") or {}
    if not all(isinstance(g.get(k), int) for k in "hwxy") or g["x"] < 0 or g["x"] + g["w"] > 24:
        error(f"{dashboard_path}: panel {title!r}: bad gridPos {g}")
    else:
        for other, o in boxes:
            if g["x"] < o["x"] + o["w"] and o["x"] < g["x"] + g["w"] and g["y"] < o["y"] + o["h"] and o["y"] < g["y"] + g["h"]:
                error(f"{dashboard_path}: panels {other!r} and {title!r} overlap")
        boxes.append((title, g))
    if p.get("type") == "row":
        continue
    if (p.get("datasource") or {}).get("uid") != "${datasource}":
        error(f"{dashboard_path}: panel {title!r}: datasource is not ${{datasource}}")
    if not p.get("targets"):
        error(f"{dashboard_path}: panel {title!r} has no targets")
    for t in p.get("targets", []):
        if not t.get("expr"):
            error(f"{dashboard_path}: panel {title!r}: a target without expr")
        exprs.append((t.get("expr", ""), f"{dashboard_path}: panel {title!r}"))

for expr, where in exprs:
    names = metric_names(expr)
    if not names:
        error(f"{where}: no metric name found in {expr!r}")
    for name in names:
        if name not in known:
            error(f"{where}: {name} is not a metric the service exports (deploy/prometheus/metric-names.txt) nor a recorded series")

if errors:
    for e in errors:
        print(f"check-observability: {e}", file=sys.stderr)
    sys.exit(1)
print(f"check-observability: {len(exprs)} expressions use only exported or recorded metric names; "
      f"{len(alerts)} alerts each tested firing and not; dashboard: {len(ids)} panels, none overlapping")
PY
echo "check-observability: ok"

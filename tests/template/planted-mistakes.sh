#!/usr/bin/env bash
# Proves scripts/validate-template catches mistakes: copies template.yaml, plants one mistake
# per copy, and asserts validation fails *for that reason* (and that the clean template
# passes). Run by scripts/test in the template-validation step.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
venv="${DYNABRIDGE_VENV:-$root/.venv}"
failures=0

# plant NAME PYTHON-EXPR: writes $work/NAME.yaml = template with `text` transformed by EXPR
# (EXPR edits the string `t`; it must change it).
plant() {
  local name=$1 expr=$2
  "$venv/bin/python" - "$root/template.yaml" "$work/$name.yaml" "$expr" <<'PY'
import sys
src, dst, expr = sys.argv[1:4]
t = open(src).read()
before = t
exec(expr)
assert t != before, f"the mistake was not planted: {expr}"
open(dst, "w").write(t)
PY
}

# expect_failure NAME PATTERN CMD...: CMD must fail and its output must match PATTERN.
expect_failure() {
  local name=$1 pattern=$2; shift 2
  local out
  if out=$("$@" 2>&1); then
    echo "FAIL $name: validation passed, expected a failure matching /$pattern/" >&2
    failures=$((failures + 1))
  elif ! grep -Eq -- "$pattern" <<<"$out"; then
    echo "FAIL $name: validation failed, but not with /$pattern/:" >&2
    echo "$out" | sed 's/^/    /' >&2
    failures=$((failures + 1))
  else
    echo "ok   $name: rejected as expected:" >&2
    grep -E -- "$pattern" <<<"$out" | head -3 | sed 's/^/    /' >&2
  fi
}

expect_success() {
  local name=$1; shift
  local out
  if out=$("$@" 2>&1); then
    echo "ok   $name: accepted" >&2
  else
    echo "FAIL $name: expected success:" >&2
    echo "$out" | sed 's/^/    /' >&2
    failures=$((failures + 1))
  fi
}

# 1. The issue's example: a misspelt FunctionResponseTypes value on a stream mapping.
plant report-batch-failures 't = t.replace("FunctionResponseTypes: [ReportBatchItemFailures]", "FunctionResponseTypes: [ReportBatchFailures]", 1)'
expect_failure report-batch-failures "E3030:'ReportBatchFailures' is not one of" \
  "$root/scripts/validate-template" "$work/report-batch-failures.yaml"

# 2. A wildcard resource in a function role.
plant wildcard-resource 't = t.replace("Resource: !GetAtt ControlTable.Arn", "Resource: \"*\"", 1)'
expect_failure wildcard-resource "Checkpoints\): Resource '\*'" \
  "$root/scripts/validate-template" "$work/wildcard-resource.yaml"

# 3. A wildcard action.
plant wildcard-action 't = t.replace("Action: [dynamodb:GetItem, dynamodb:UpdateItem]", "Action: [\"dynamodb:*\"]", 1)'
expect_failure wildcard-action "wildcard action 'dynamodb:\*'" \
  "$venv/bin/python" "$root/scripts/check_iam_wildcards.py" "$work/wildcard-action.yaml"

# 4. A SAM-only mistake (misspelt ScheduleV2 property): the SAM transform refuses it.
plant sam-property 't = t.replace("ScheduleExpression: !Ref ExportSchedule", "ScheduleExpresion: !Ref ExportSchedule", 1)'
expect_failure sam-property "ScheduleExpresion" \
  "$root/scripts/validate-template" "$work/sam-property.yaml"

# 5. dynabridge's own stream-mapping rules: no tumbling window (no shardId), PF > 1, no TTL filter.
plant no-tumbling-window 'import re; t = re.sub(r"\n +TumblingWindowInSeconds: !Ref StreamTumblingWindowSeconds", "", t, count=1)'
expect_failure no-tumbling-window "StreamFanoutStreamMapping: TumblingWindowInSeconds must be set" \
  "$root/scripts/validate-template" "$work/no-tumbling-window.yaml"
plant parallelization 't = t.replace("ParallelizationFactor: 1", "ParallelizationFactor: 4", 1)'
expect_failure parallelization "ParallelizationFactor must be 1" \
  "$venv/bin/python" "$root/scripts/check_stream_mappings.py" "$work/parallelization.yaml"
plant no-ttl-filter 't = t.replace("\"eventName\":[\"REMOVE\"],", "", 1)'
expect_failure no-ttl-filter "TtlCleanupStreamMapping: ttl-cleanup must filter on TTL deletions" \
  "$venv/bin/python" "$root/scripts/check_stream_mappings.py" "$work/no-ttl-filter.yaml"

# 6. An allow-listed wildcard passes the wildcard check; the allow-list needs a reason.
plant allow-listed 't = t.replace("              - Sid: Checkpoints\n", "              # dynabridge-allow-wildcard: NeedsStar AWS offers no resource-level permission here\n              - Sid: NeedsStar\n                Effect: Allow\n                Action: xray:PutTraceSegments\n                Resource: \"*\"\n              - Sid: Checkpoints\n", 1)'
expect_success allow-listed \
  "$venv/bin/python" "$root/scripts/check_iam_wildcards.py" "$work/allow-listed.yaml"
plant allow-listed-no-reason 't = t.replace("              - Sid: Checkpoints\n", "              # dynabridge-allow-wildcard: NeedsStar\n              - Sid: NeedsStar\n                Effect: Allow\n                Action: xray:PutTraceSegments\n                Resource: \"*\"\n              - Sid: Checkpoints\n", 1)'
expect_failure allow-listed-no-reason "NeedsStar has no reason" \
  "$venv/bin/python" "$root/scripts/check_iam_wildcards.py" "$work/allow-listed-no-reason.yaml"

# 7. The template as committed passes everything.
expect_success clean-template "$root/scripts/validate-template" "$root/template.yaml"

if [ "$failures" -gt 0 ]; then
  echo "planted-mistakes: $failures check(s) failed" >&2
  exit 1
fi
echo "planted-mistakes: every planted mistake was caught; the clean template passes" >&2

#!/usr/bin/env python3
"""Fails when a DynamoDB stream mapping of the template breaks what dynabridge's code relies on.

    .venv/bin/python scripts/check_stream_mappings.py template.yaml

cfn-lint checks that values are valid; this checks that they are *ours* (every
`AWS::Lambda::EventSourceMapping`, and every SAM `DynamoDB` event, must have):
- `FunctionResponseTypes: [ReportBatchItemFailures]` - handlers return ordered partial failures;
- `BisectBatchOnFunctionError: true`;
- `ParallelizationFactor: 1` - checkpoints are per shard (shared/src/checkpoint.rs);
- `TumblingWindowInSeconds` > 0 (a parameter reference counts) - only the tumbling-window
  envelope carries `shardId` (shared/src/stream/mod.rs);
- `MaximumRetryAttempts`, `MaximumRecordAgeInSeconds` set, and an on-failure destination;
- the ttl-cleanup mapping filters on TTL deletions (REMOVE by the DynamoDB service).
"""

import json
import sys

from check_iam_wildcards import load_template

TTL_FILTER = {
    "eventName": ["REMOVE"],
    "userIdentity": {"type": ["Service"], "principalId": ["dynamodb.amazonaws.com"]},
}


def mappings(template):
    for logical_id, res in (template.get("Resources") or {}).items():
        rtype = res.get("Type")
        props = res.get("Properties") or {}
        if rtype == "AWS::Lambda::EventSourceMapping":
            fn = props.get("FunctionName")
            target = fn.get("Ref") if isinstance(fn, dict) else fn
            yield logical_id, target, props
        elif rtype == "AWS::Serverless::Function":
            for name, ev in (props.get("Events") or {}).items():
                if ev.get("Type") == "DynamoDB":
                    yield f"{logical_id}.{name}", logical_id, ev.get("Properties") or {}


def main(path):
    template = load_template(open(path, encoding="utf-8").read())
    problems = []
    found = 0
    for where, function, p in mappings(template):
        found += 1

        def need(cond, msg):
            if not cond:
                problems.append(f"{where}: {msg}")

        need(p.get("FunctionResponseTypes") == ["ReportBatchItemFailures"],
             "FunctionResponseTypes must be [ReportBatchItemFailures]")
        need(p.get("BisectBatchOnFunctionError") is True, "BisectBatchOnFunctionError must be true")
        need(p.get("ParallelizationFactor") == 1,
             "ParallelizationFactor must be 1 (checkpoints are per shard)")
        tw = p.get("TumblingWindowInSeconds")
        need(isinstance(tw, dict) or (isinstance(tw, int) and tw > 0),
             "TumblingWindowInSeconds must be set (> 0): it is what gives the handler shardId")
        need("MaximumRetryAttempts" in p, "MaximumRetryAttempts must be set (default is infinite)")
        need("MaximumRecordAgeInSeconds" in p, "MaximumRecordAgeInSeconds must be set")
        dest = ((p.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        need(dest is not None, "an OnFailure destination is required")
        if function and "TtlCleanup" in str(function):
            filters = ((p.get("FilterCriteria") or {}).get("Filters")) or []
            patterns = []
            for f in filters:
                try:
                    patterns.append(json.loads(f.get("Pattern", "")))
                except (TypeError, ValueError):
                    patterns.append(None)
            need(patterns == [TTL_FILTER], "ttl-cleanup must filter on TTL deletions only: "
                 + json.dumps(TTL_FILTER))
    if found == 0:
        problems.append("no DynamoDB stream mapping found")
    for p in problems:
        print(f"stream-mapping-check: {p}", file=sys.stderr)
    if problems:
        print(f"stream-mapping-check: FAILED ({len(problems)} problem(s))", file=sys.stderr)
        return 1
    print(f"stream-mapping-check: ok ({found} stream mapping(s))", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

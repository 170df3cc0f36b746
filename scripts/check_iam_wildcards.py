#!/usr/bin/env python3
"""Fails when an IAM statement of a SAM/CloudFormation template allows a wildcard.

Run with the project venv (PyYAML and aws-sam-translator come with cfn-lint / the SAM CLI):

    .venv/bin/python scripts/check_iam_wildcards.py template.yaml

What is checked, in the template as written *and* after the SAM transform (so policies SAM
generates - schedule roles, policy templates, implicit stream/queue permissions - are seen):

- every ``Allow`` statement of an identity policy (role inline policies, ``AWS::IAM::Policy``,
  ``AWS::IAM::ManagedPolicy``, SAM ``Policies``) or resource policy (bucket, queue, topic,
  event bus policies);
- ``Action``: any ``*`` (``*``, ``s3:*``, ``s3:Get*``) is a violation; ``NotAction`` and
  ``NotResource`` always are;
- ``Resource``: ``*``, or an ARN with a wildcard in its partition/service/region/account,
  or a resource path whose first two segments are not both concrete (``table/*``,
  ``function:*``, ``bucket/*``). Prefix-scoped paths (``bucket/cdc/*``,
  ``table/T/stream/*``, ``function:F:*``) pass;
- an AWS managed policy ARN in ``ManagedPolicyArns`` (its statements are not visible here and
  usually use ``Resource: "*"``).

``Deny`` statements restrict access and are not checked. A statement that must use a
wildcard (because AWS offers no resource-level permission for the action) is allowed when its
``Sid`` (or, for managed policies, the policy ARN's last segment) appears in a comment of the
template:

    # dynabridge-allow-wildcard: <Sid> <why AWS requires it>

An allow-list entry without a reason, or one that matches nothing, is itself a violation.

CloudFormation short-form tags (``!Sub``, ``!GetAtt``, ``!If`` ...) are parsed into their
long forms. Intrinsics are not evaluated: ``!Ref``/``!GetAtt`` and ``${...}`` count as a
concrete name; both branches of ``!If`` are checked.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass

import yaml

ALLOW_RE = re.compile(r"#\s*dynabridge-allow-wildcard:\s*([A-Za-z0-9_.-]+)\s*(.*)$")
PLACEHOLDER = "X"


# --------------------------------------------------------------------------- YAML loading --
class CfnLoader(yaml.SafeLoader):
    """SafeLoader that understands CloudFormation's short-form intrinsic tags."""


def _construct_tag(loader: CfnLoader, tag_suffix: str, node: yaml.Node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(text: str) -> dict:
    data = yaml.load(text, Loader=CfnLoader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(data, dict):
        raise ValueError("template is not a mapping")
    return data


# ------------------------------------------------------------------- intrinsic rendering --
def variants(value) -> list:
    """All concrete shapes of a value: `Fn::If` yields both branches."""
    if isinstance(value, dict) and len(value) == 1:
        (key, arg), = value.items()
        if key == "Fn::If" and isinstance(arg, list) and len(arg) == 3:
            return variants(arg[1]) + variants(arg[2])
    return [value]


def render(value) -> list[str]:
    """Renders a resource/action value to strings, intrinsics replaced by placeholders."""
    out: list[str] = []
    for v in variants(value):
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, (int, float)):
            out.append(str(v))
        elif isinstance(v, dict) and len(v) == 1:
            (key, arg), = v.items()
            if key in ("Ref", "Fn::GetAtt", "Fn::ImportValue", "Fn::Select", "Fn::GetAZs"):
                if key == "Ref" and arg == "AWS::NoValue":
                    continue
                out.append(PLACEHOLDER)
            elif key == "Fn::Sub":
                template = arg[0] if isinstance(arg, list) else arg
                out.append(re.sub(r"\$\{[^}!][^}]*\}", PLACEHOLDER, template))
            elif key == "Fn::Join" and isinstance(arg, list) and len(arg) == 2:
                sep, parts = arg
                rendered = [render(p) for p in (parts if isinstance(parts, list) else [parts])]
                combos = [""]
                for options in rendered:
                    combos = [c + (sep if c or i else "") + o
                              for c in combos for i, o in enumerate(options or [""])]
                out.extend(combos)
            else:
                out.append(json.dumps(v))
        elif v is None:
            continue
        else:
            out.append(json.dumps(v))
    return out


def as_list(value) -> list:
    flat = []
    for v in variants(value):
        if isinstance(v, list):
            for item in v:
                flat.extend(variants(item))
        elif v is not None:
            flat.append(v)
    return flat


# ------------------------------------------------------------------------------- checks ----
def action_problem(action: str) -> str | None:
    if "*" in action:
        return f"wildcard action {action!r}"
    return None


def resource_problem(resource: str) -> str | None:
    if resource.strip() == "*":
        return "Resource '*'"
    if "*" not in resource:
        return None
    if resource.startswith("arn:"):
        parts = resource.split(":", 5)
        if len(parts) < 6:
            return f"malformed ARN with a wildcard {resource!r}"
        if any("*" in p for p in parts[1:5]):
            return f"wildcard partition/service/region/account in {resource!r}"
        path = parts[5]
    else:
        # `${Bucket.Arn}/cdc/*` rendered as `X/cdc/*`: the placeholder is the resource.
        path = resource
    segments = re.split(r"[/:]", path)
    concrete = 0
    for seg in segments:
        if "*" in seg:
            break
        concrete += 1
    if concrete < 2:
        return f"resource not scoped below its type/container: {resource!r}"
    return None


@dataclass
class Finding:
    where: str
    sid: str | None
    problem: str

    def __str__(self) -> str:
        sid = f" (Sid {self.sid})" if self.sid else " (no Sid)"
        return f"{self.where}{sid}: {self.problem}"


def check_statements(where: str, document, findings: list[Finding], sids_seen: set[str]):
    for doc in variants(document):
        if not isinstance(doc, dict):
            continue
        for stmt in as_list(doc.get("Statement", [])):
            if not isinstance(stmt, dict):
                continue
            if stmt.get("Effect") != "Allow":
                continue
            sid = stmt.get("Sid")
            if isinstance(sid, str):
                sids_seen.add(sid)
            for key in ("NotAction", "NotResource"):
                if key in stmt:
                    findings.append(Finding(where, sid, f"{key} allows everything else"))
            for action in as_list(stmt.get("Action", [])):
                for text in render(action):
                    if problem := action_problem(text):
                        findings.append(Finding(where, sid, problem))
            for resource in as_list(stmt.get("Resource", [])):
                for text in render(resource):
                    if problem := resource_problem(text):
                        findings.append(Finding(where, sid, problem))


def check_template(template: dict, label: str, findings: list[Finding], sids_seen: set[str]):
    for logical_id, res in (template.get("Resources") or {}).items():
        if not isinstance(res, dict):
            continue
        rtype = res.get("Type", "")
        props = res.get("Properties") or {}
        where = f"[{label}] {logical_id} ({rtype})"
        if rtype == "AWS::IAM::Role":
            for pol in as_list(props.get("Policies", [])):
                if isinstance(pol, dict):
                    check_statements(f"{where} policy {pol.get('PolicyName')}",
                                     pol.get("PolicyDocument"), findings, sids_seen)
            for arn in as_list(props.get("ManagedPolicyArns", [])):
                for text in render(arn):
                    if re.match(r"^arn:[^:]*:iam::aws:policy/", text) or ":iam::aws:policy/" in text:
                        name = text.rsplit("/", 1)[-1]
                        sids_seen.add(name)
                        findings.append(Finding(where, name,
                                                f"AWS managed policy {text!r} (statements not reviewable here)"))
        elif rtype in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::S3::BucketPolicy",
                       "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy"):
            check_statements(where, props.get("PolicyDocument"), findings, sids_seen)
        elif rtype == "AWS::Events::EventBusPolicy" and "Statement" in props:
            check_statements(where, {"Statement": [props["Statement"]]}, findings, sids_seen)
        elif rtype == "AWS::Serverless::Function":
            for pol in as_list(props.get("Policies", [])):
                if isinstance(pol, dict) and "Statement" in pol:
                    check_statements(f"{where} Policies", pol, findings, sids_seen)
                elif isinstance(pol, str) and ":iam::aws:policy/" in pol or (
                        isinstance(pol, str) and not pol.startswith("arn:")):
                    name = pol.rsplit("/", 1)[-1]
                    sids_seen.add(name)
                    findings.append(Finding(where, name, f"AWS managed policy {pol!r}"))


class _NoManagedPolicies:
    """The SAM translator asks IAM for managed policy ARNs; offline there are none."""

    def load(self):
        return {}


def transformed(template: dict) -> dict | None:
    if "Transform" not in template:
        return None
    # The translator reads the region from the boto session; offline, give it one.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    from samtranslator.translator.transform import transform

    params = {
        "AWS::Region": "us-east-1",
        "AWS::Partition": "aws",
        "AWS::AccountId": "123456789012",
        "AWS::StackName": "dynabridge",
        "AWS::StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/dynabridge/x",
        "AWS::URLSuffix": "amazonaws.com",
    }
    doc = json.loads(json.dumps(template))
    # Local code paths are packaged to S3 by `sam package`; the translator wants S3 URIs.
    fn_globals = (doc.get("Globals") or {}).get("Function") or {}
    if isinstance(fn_globals.get("CodeUri"), str):
        fn_globals["CodeUri"] = "s3://bucket/code.zip"
    for res in (doc.get("Resources") or {}).values():
        props = res.get("Properties") if isinstance(res, dict) else None
        if not isinstance(props, dict):
            continue
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str) and not props[key].startswith("s3://"):
                props[key] = "s3://bucket/code.zip"
    return transform(doc, params, _NoManagedPolicies())


def allow_list(text: str) -> tuple[dict[str, str], list[str]]:
    allowed: dict[str, str] = {}
    errors: list[str] = []
    for n, line in enumerate(text.splitlines(), 1):
        m = ALLOW_RE.search(line)
        if not m:
            continue
        sid, reason = m.group(1), m.group(2).strip()
        if len(reason) < 10:
            errors.append(f"line {n}: allow-list entry for {sid} has no reason")
        allowed[sid] = reason
    return allowed, errors


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} TEMPLATE", file=sys.stderr)
        return 2
    text = open(argv[1], encoding="utf-8").read()
    template = load_template(text)
    allowed, errors = allow_list(text)

    findings: list[Finding] = []
    sids_seen: set[str] = set()
    check_template(template, "template", findings, sids_seen)
    try:
        after = transformed(template)
    except Exception as exc:  # the SAM translator reports invalid documents by raising
        errors.append(f"SAM transform failed, generated policies not checked: {exc}")
        after = None
    if after is not None:
        check_template(after, "after SAM transform", findings, sids_seen)

    # The same statement is usually seen twice (as written and after the transform).
    unique = list(dict.fromkeys(str(f) for f in findings if f.sid not in allowed))
    for sid in allowed:
        if sid not in sids_seen:
            errors.append(f"allow-list entry {sid} matches no statement (stale?)")
    for line in errors + unique:
        print(f"wildcard-check: {line}", file=sys.stderr)
    accepted = sorted({f.sid for f in findings if f.sid in allowed})
    for sid in accepted:
        print(f"wildcard-check: allowed {sid}: {allowed[sid]}", file=sys.stderr)
    if errors or unique:
        print(f"wildcard-check: FAILED ({len(unique)} wildcard statement(s), {len(errors)} other problem(s))",
              file=sys.stderr)
        return 1
    print("wildcard-check: ok (no wildcard action or resource in any Allow statement)"
          + (f", {len(accepted)} allow-listed" if accepted else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

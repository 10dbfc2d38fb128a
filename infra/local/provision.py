#!/usr/bin/env python3
"""Create the local emulator's resources from template.yaml (the single source of truth).

1. Translate the SAM template with the SAM translator (offline), exactly like
   `sam validate`/`sam deploy` would, so Globals are merged into each function.
2. Create the data resources moto's CloudFormation understands (DynamoDB tables,
   SNS topics, SQS queues) as a real stack in moto's CloudFormation, with
   deterministic physical names (`<stack>-<LogicalId>`) so that a reset of the
   emulator followed by another run yields the same names the running functions
   already have in their environment. Every other resource type (IAM, KMS, logs,
   alarms, dashboards, schedules, ...) is skipped, and a property of a created
   resource that refers to a skipped one (the topic's KmsMasterKeyId) is left out.
3. By API, what moto's CloudFormation skips: DynamoDB TimeToLiveSpecification and
   PointInTimeRecoverySpecification, and the AWS::Timestream::* resources (moto has
   Timestream Write but no CloudFormation model for it).
4. The local alert subscriber: an SQS queue subscribed to every SNS topic of the
   template, raw message delivery off (the SNS envelope with MessageAttributes
   arrives).
   With `--service-endpoint sns=URL --service-endpoint sqs=URL` (the LocalStack
   lane) the topics, queues and the subscriber live at that endpoint instead: they
   are created there by API with the same pinned names, and left out of the
   CloudFormation stack in the main emulator.
5. Resolve each function's Environment.Variables (Ref/GetAtt/If/Sub/...) against
   the created resources and the parameter values, and write them as KEY=VALUE
   files for `cargo lambda watch --env-file` and for the tests.

Idempotent: an existing stack is kept, the API steps check before they create.
Run with the local venv's python (it has boto3, samtranslator and cfn-lint).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

# moto's default account; LocalStack takes a 12-digit access key id as the account
# id, and the local stack's credentials are that (stack.sh), so ARNs agree.
ACCOUNT_ID = "123456789012"
# Resource types created through moto's CloudFormation (it models them well enough).
CFN_TYPES = {"AWS::DynamoDB::Table", "AWS::SNS::Topic", "AWS::SQS::Queue"}
# Resource types created here by API (moto's CloudFormation has no model for them).
API_TYPES = {"AWS::Timestream::Database", "AWS::Timestream::Table"}
# The service (as in --service-endpoint) of each type that can be routed elsewhere.
SERVICE_OF_TYPE = {"AWS::SNS::Topic": "sns", "AWS::SQS::Queue": "sqs"}
# SQS queue properties that are queue attributes of the same name (as strings).
SQS_ATTRIBUTE_PROPERTIES = {
    "ContentBasedDeduplication",
    "DelaySeconds",
    "FifoQueue",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "RedrivePolicy",
    "SqsManagedSseEnabled",
    "VisibilityTimeout",
}
# The name property each created type accepts, used to pin physical names.
NAME_PROPERTY = {
    "AWS::DynamoDB::Table": "TableName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::Timestream::Database": "DatabaseName",
    "AWS::Timestream::Table": "TableName",
}


def fail(msg: str) -> None:
    print(f"provision: error: {msg}", file=sys.stderr)
    sys.exit(1)


# --------------------------------------------------------------------- template


def load_and_translate(template_path: Path, params: dict[str, str]) -> dict[str, Any]:
    """Parse template.yaml (short-form intrinsics included) and run the SAM transform."""
    from cfnlint.decode import decode_str  # YAML loader that understands !Ref, !If, ...
    from samtranslator.translator.transform import transform

    tpl, matches = decode_str(template_path.read_text())
    if matches or tpl is None:
        fail(f"cannot parse {template_path}: {matches}")
    tpl = json.loads(json.dumps(tpl))  # plain dicts/lists
    # The translator wants S3 code locations; local paths are what `sam build`
    # packages. Same substitution `sam validate` makes.
    glob_fn = tpl.get("Globals", {}).get("Function", {})
    if isinstance(glob_fn.get("CodeUri"), str):
        glob_fn["CodeUri"] = "s3://local/code.zip"
    for res in tpl.get("Resources", {}).values():
        if res.get("Type") == "AWS::Serverless::Function":
            code = res.get("Properties", {}).get("CodeUri")
            if isinstance(code, str) and not code.startswith("s3://"):
                res["Properties"]["CodeUri"] = "s3://local/code.zip"
    return transform(tpl, params, None)


def parameter_values(tpl: dict[str, Any], overrides: dict[str, str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, spec in tpl.get("Parameters", {}).items():
        if name in overrides:
            values[name] = overrides[name]
        elif "Default" in spec:
            default = spec["Default"]
            values[name] = ",".join(map(str, default)) if isinstance(default, list) else str(default)
        else:
            fail(f"template parameter {name} has no default: pass --param {name}=...")
    unknown = set(overrides) - set(values)
    if unknown:
        fail(f"unknown template parameter(s): {', '.join(sorted(unknown))}")
    return values


# --------------------------------------------------------------------- intrinsics


class Resolver:
    """Evaluates the CloudFormation intrinsics the template uses, locally."""

    def __init__(self, tpl: dict[str, Any], params: dict[str, str], region: str, stack: str):
        self.tpl = tpl
        self.params = params
        self.region = region
        self.stack = stack
        self.physical: dict[str, str] = {}  # logical id -> physical id (Ref value)
        self.attrs: dict[str, dict[str, str]] = {}  # logical id -> GetAtt values
        self._conditions: dict[str, bool] = {}

    def pseudo(self, name: str) -> str | None:
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::StackName": self.stack,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{ACCOUNT_ID}:stack/{self.stack}/local",
        }.get(name)

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.value(self.tpl["Conditions"][name]))
        return self._conditions[name]

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return None
        p = self.pseudo(name)
        if p is not None:
            return p
        if name in self.params:
            spec = self.tpl["Parameters"][name]
            if spec.get("Type", "").startswith("CommaDelimitedList") or spec.get("Type", "").startswith("List<"):
                return self.params[name].split(",")
            return self.params[name]
        if name in self.physical:
            return self.physical[name]
        raise KeyError(f"Ref {name}: no such parameter or created resource")

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.value(x) for x in node) if v is not None]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::GetAtt":
                logical, attr = arg.split(".", 1) if isinstance(arg, str) else arg
                try:
                    return self.attrs[logical][attr]
                except KeyError:
                    raise KeyError(f"GetAtt {logical}.{attr}: not known locally") from None
            if key == "Fn::If":
                cond, yes, no = arg
                return self.value(yes if self.condition(cond) else no)
            if key == "Fn::Equals":
                a, b = (self.value(x) for x in arg)
                return str(a) == str(b)
            if key == "Fn::Not":
                return not self.value(arg[0])
            if key == "Fn::And":
                return all(self.value(x) for x in arg)
            if key == "Fn::Or":
                return any(self.value(x) for x in arg)
            if key == "Fn::Join":
                sep, items = arg
                return sep.join(str(x) for x in self.value(items))
            if key == "Fn::Select":
                idx, items = arg
                return self.value(items)[int(self.value(idx))]
            if key == "Fn::Split":
                sep, s = arg
                return str(self.value(s)).split(sep)
            if key == "Fn::FindInMap":
                m, k1, k2 = (self.value(x) for x in arg)
                return self.tpl["Mappings"][m][str(k1)][str(k2)]
            if key == "Fn::Sub":
                text, local = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                local = {k: self.value(v) for k, v in local.items()}

                def sub(m: re.Match[str]) -> str:
                    name = m.group(1)
                    if name.startswith("!"):
                        return "${" + name[1:] + "}"
                    if name in local:
                        return str(local[name])
                    if "." in name:
                        return str(self.value({"Fn::GetAtt": name}))
                    return str(self.ref(name))

                return re.sub(r"\$\{([^}]+)\}", sub, text)
        return {k: self.value(v) for k, v in node.items()}


# --------------------------------------------------------------------- provisioning


def wanted(res: dict[str, Any], resolver: Resolver) -> bool:
    cond = res.get("Condition")
    return cond is None or resolver.condition(cond)


def pinned_name(stack: str, logical: str) -> str:
    return f"{stack}-{logical}"


def references(node: Any) -> set[str]:
    """Logical ids (and parameter / pseudo names) a value refers to: Ref, GetAtt, Sub."""
    found: set[str] = set()
    if isinstance(node, list):
        for x in node:
            found |= references(x)
    elif isinstance(node, dict):
        for key, arg in node.items():
            if key == "Ref" and isinstance(arg, str):
                found.add(arg)
            elif key == "Fn::GetAtt":
                found.add((arg.split(".", 1) if isinstance(arg, str) else arg)[0])
            elif key == "Fn::Sub":
                text, local = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                names = {m.split(".", 1)[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", text)}
                found |= (names - set(local)) | references(local)
            else:
                found |= references(arg)
    return found


def drop_unresolvable(
    logical: str, props: dict[str, Any], known: set[str], dropped: list[str]
) -> None:
    """Removes the properties that refer to a resource not created locally (e.g. a
    topic's KMS key), noting each in `dropped`: the local resource goes without."""
    for key in list(props):
        missing = {r for r in references(props[key]) - known if not r.startswith("AWS::")}
        if missing:
            dropped.append(f"{logical}.{key} (refers to {', '.join(sorted(missing))})")
            del props[key]


def create_cfn_stack(
    cfn: Any, tpl: dict[str, Any], resolver: Resolver, stack: str, routed: set[str]
) -> tuple[list[str], list[str]]:
    """Create the moto-supported data resources as a CloudFormation stack, except
    those of the `routed` types (created elsewhere by `create_routed`).

    Returns the skipped types and the properties dropped because they refer to a
    resource that is not created here (e.g. a topic's KMS key): the emulator's
    resource is created without them.
    """
    resources = {}
    skipped = sorted(
        {r["Type"] for r in tpl["Resources"].values() if r["Type"] not in CFN_TYPES | API_TYPES}
    )
    local = CFN_TYPES - routed
    created = {logical for logical, r in tpl["Resources"].items() if r["Type"] in CFN_TYPES}
    known = created | set(tpl.get("Parameters", {})) | {"AWS::NoValue"}
    dropped: list[str] = []
    for logical, res in tpl["Resources"].items():
        if res["Type"] not in local:
            continue
        res = copy.deepcopy(res)
        props = res.setdefault("Properties", {})
        drop_unresolvable(logical, props, known, dropped)
        if "DependsOn" in res:
            depends = [
                d for d in as_list(res["DependsOn"]) if d in created and tpl["Resources"][d]["Type"] in local
            ]
            if depends:
                res["DependsOn"] = depends
            else:
                del res["DependsOn"]
        props.setdefault(NAME_PROPERTY[res["Type"]], pinned_name(stack, logical))
        sse = props.get("SSESpecification")
        if res["Type"] == "AWS::DynamoDB::Table" and isinstance(sse, dict) and "SSEEnabled" in sse:
            # moto 5.2.5 reads the API's key ("Enabled") from the CloudFormation
            # property, whose key is "SSEEnabled": give it both.
            sse["Enabled"] = sse["SSEEnabled"]
        resources[logical] = res
    body = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Parameters": tpl.get("Parameters", {}),
        "Conditions": tpl.get("Conditions", {}),
        "Mappings": tpl.get("Mappings", {}),
        "Resources": resources,
    }
    if not body["Conditions"]:
        del body["Conditions"]
    if not body["Mappings"]:
        del body["Mappings"]
    try:
        status = cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
    except cfn.exceptions.ClientError:
        status = None
    if status is None:
        cfn.create_stack(
            StackName=stack,
            TemplateBody=json.dumps(body),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in resolver.params.items()],
        )
        deadline = time.time() + 60
        while True:
            status = cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
            if not status.endswith("IN_PROGRESS") or time.time() > deadline:
                break
            time.sleep(0.5)
    if status != "CREATE_COMPLETE":
        fail(f"stack {stack} is {status} in the emulator (POST /moto-api/reset and retry)")
    for r in cfn.describe_stack_resources(StackName=stack)["StackResources"]:
        # moto lists resources it skipped with an empty logical id: ignore those.
        if r.get("LogicalResourceId"):
            resolver.physical[r["LogicalResourceId"]] = r["PhysicalResourceId"]
    return skipped, dropped


def create_routed(
    clients: dict[str, Any], tpl: dict[str, Any], resolver: Resolver, stack: str
) -> list[str]:
    """SNS topics and SQS queues of the template by API at their service's own
    endpoint (`clients`: service -> client), with the pinned names. Idempotent:
    CreateTopic and CreateQueue return the existing resource for equal input.

    Returns the dropped properties (references to resources not created locally,
    and properties with no API equivalent here).
    """
    created = {logical for logical, r in tpl["Resources"].items() if r["Type"] in CFN_TYPES}
    known = created | set(tpl.get("Parameters", {})) | {"AWS::NoValue"}
    dropped: list[str] = []
    # Dead-letter queues before the queues whose RedrivePolicy names them.
    ordered = sorted(tpl["Resources"].items(), key=lambda item: "RedrivePolicy" in item[1].get("Properties", {}))
    for logical, res in ordered:
        service = SERVICE_OF_TYPE.get(res["Type"])
        if service not in clients or not wanted(res, resolver):
            continue
        props = copy.deepcopy(res.get("Properties", {}))
        drop_unresolvable(logical, props, known, dropped)
        props = resolver.value(props)
        name = props.pop(NAME_PROPERTY[res["Type"]], None) or pinned_name(stack, logical)
        tags = props.pop("Tags", [])
        if service == "sns":
            arn = clients["sns"].create_topic(Name=name, Tags=tags)["TopicArn"]
            resolver.physical[logical] = arn
        else:
            attributes = {}
            for key in sorted(SQS_ATTRIBUTE_PROPERTIES & set(props)):
                value = props.pop(key)
                if isinstance(value, dict):
                    attributes[key] = json.dumps(value)
                else:
                    attributes[key] = str(value).lower() if isinstance(value, bool) else str(value)
            url = clients["sqs"].create_queue(
                QueueName=name, Attributes=attributes, tags={t["Key"]: t["Value"] for t in tags}
            )["QueueUrl"]
            resolver.physical[logical] = url
            record_sns_sqs_attrs(tpl, resolver)
        dropped.extend(f"{logical}.{key} (not applied at the {service} endpoint)" for key in sorted(props))
    return dropped


def as_list(node: Any) -> list[Any]:
    return node if isinstance(node, list) else [node]


def fix_dynamodb(ddb: Any, tpl: dict[str, Any], resolver: Resolver) -> None:
    """TTL and point-in-time recovery: moto's CloudFormation ignores both properties."""
    for logical, res in tpl["Resources"].items():
        if res["Type"] != "AWS::DynamoDB::Table" or logical not in resolver.physical:
            continue
        name = resolver.physical[logical]
        props = resolver.value(res.get("Properties", {}))
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            current = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
            if current.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
                ddb.update_time_to_live(
                    TableName=name,
                    TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
                )
        pitr = props.get("PointInTimeRecoverySpecification")
        if pitr and pitr.get("PointInTimeRecoveryEnabled"):
            ddb.update_continuous_backups(
                TableName=name,
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
            )
        arn = f"arn:aws:dynamodb:{resolver.region}:{ACCOUNT_ID}:table/{name}"
        resolver.attrs[logical] = {"Arn": arn, "StreamArn": ""}


def record_sns_sqs_attrs(tpl: dict[str, Any], resolver: Resolver) -> None:
    for logical, res in tpl["Resources"].items():
        phys = resolver.physical.get(logical)
        if phys is None:
            continue
        if res["Type"] == "AWS::SNS::Topic":
            resolver.attrs[logical] = {"TopicArn": phys, "TopicName": phys.rsplit(":", 1)[1]}
        elif res["Type"] == "AWS::SQS::Queue":
            name = phys.rsplit("/", 1)[1]
            resolver.attrs[logical] = {
                "QueueUrl": phys,
                "QueueName": name,
                "Arn": f"arn:aws:sqs:{resolver.region}:{ACCOUNT_ID}:{name}",
            }


def create_timestream(tsw: Any, tpl: dict[str, Any], resolver: Resolver, stack: str) -> None:
    """AWS::Timestream::Database/Table by API (databases first: tables Ref them)."""
    for kind in ("AWS::Timestream::Database", "AWS::Timestream::Table"):
        for logical, res in tpl["Resources"].items():
            if res["Type"] != kind or not wanted(res, resolver):
                continue
            props = resolver.value(res.get("Properties", {}))
            if kind == "AWS::Timestream::Database":
                name = props.get("DatabaseName") or pinned_name(stack, logical)
                try:
                    tsw.describe_database(DatabaseName=name)
                except tsw.exceptions.ResourceNotFoundException:
                    tsw.create_database(DatabaseName=name)
                resolver.physical[logical] = name
                resolver.attrs[logical] = {
                    "Arn": f"arn:aws:timestream:{resolver.region}:{ACCOUNT_ID}:database/{name}"
                }
                continue
            db = props["DatabaseName"]
            name = props.get("TableName") or pinned_name(stack, logical)
            kwargs: dict[str, Any] = {"DatabaseName": db, "TableName": name}
            ret = props.get("RetentionProperties")
            if ret:  # CloudFormation takes strings, the API integers
                kwargs["RetentionProperties"] = {k: int(v) for k, v in ret.items()}
            mag = props.get("MagneticStoreWriteProperties")
            if mag:
                kwargs["MagneticStoreWriteProperties"] = {
                    "EnableMagneticStoreWrites": str(mag.get("EnableMagneticStoreWrites")).lower() == "true"
                }
            try:
                tsw.describe_table(DatabaseName=db, TableName=name)
            except tsw.exceptions.ResourceNotFoundException:
                tsw.create_table(**kwargs)
            # Ref of a Timestream table is "db|table" in CloudFormation.
            resolver.physical[logical] = f"{db}|{name}"
            resolver.attrs[logical] = {
                "Name": name,
                "Arn": f"arn:aws:timestream:{resolver.region}:{ACCOUNT_ID}:database/{db}/table/{name}",
            }


def create_alert_subscriber(sqs: Any, sns: Any, tpl: dict[str, Any], resolver: Resolver, queue: str) -> str:
    """SQS queue subscribed to each SNS topic of the template (the local alert subscriber)."""
    url = sqs.create_queue(QueueName=queue)["QueueUrl"]  # idempotent for equal attributes
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for logical, res in tpl["Resources"].items():
        if res["Type"] == "AWS::SNS::Topic" and logical in resolver.physical:
            topic = resolver.physical[logical]
            existing = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
            if not any(s["Endpoint"] == arn for s in existing):
                # RawMessageDelivery stays off: the reader sees the SNS envelope,
                # MessageAttributes included, like a real SQS subscriber.
                sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    return url


def function_environments(tpl: dict[str, Any], resolver: Resolver) -> dict[str, dict[str, str]]:
    """Binary name -> resolved Environment.Variables of its AWS::Lambda::Function."""
    envs = {}
    for logical, res in tpl["Resources"].items():
        if res["Type"] != "AWS::Lambda::Function":
            continue
        binary = res.get("Metadata", {}).get("BuildProperties", {}).get("Binary", logical)
        variables = res.get("Properties", {}).get("Environment", {}).get("Variables", {})
        resolved = {}
        for key, val in variables.items():
            v = resolver.value(val)
            if v is None:
                continue
            if isinstance(v, bool):
                v = str(v).lower()
            resolved[key] = str(v)
        envs[binary] = resolved
    return envs


def write_env(path: Path, env: dict[str, str]) -> None:
    lines = []
    for k, v in env.items():
        if "\n" in v or " " in v or "#" in v or "'" in v or '"' in v:
            fail(f"environment value of {k} cannot be written as a plain KEY=VALUE line: {v!r}")
        lines.append(f"{k}={v}")
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)


def kv(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            fail(f"expected KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k] = v
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--template", required=True, type=Path)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument(
        "--service-endpoint",
        action="append",
        default=[],
        help="SERVICE=URL: create that service's resources (sns, sqs) at URL instead",
    )
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--stack-name", default="modelwatch-local")
    ap.add_argument("--alert-queue", default=None, help="default: <stack>-alert-subscriber")
    ap.add_argument("--param", action="append", default=[], help="template parameter KEY=VALUE")
    ap.add_argument("--function-env", action="append", default=[], help="extra KEY=VALUE for functions and tests")
    ap.add_argument("--stack-env", action="append", default=[], help="extra KEY=VALUE for tests only")
    ap.add_argument("--functions-env-file", required=True, type=Path)
    ap.add_argument("--stack-env-file", required=True, type=Path)
    args = ap.parse_args()

    os.environ.setdefault("AWS_DEFAULT_REGION", args.region)  # the translator wants a region
    import boto3

    overrides = kv(args.param)
    raw_params = {k: v for k, v in overrides.items()}
    tpl = load_and_translate(args.template, raw_params)
    params = parameter_values(tpl, overrides)
    resolver = Resolver(tpl, params, args.region, args.stack_name)

    session = boto3.session.Session(
        aws_access_key_id=ACCOUNT_ID, aws_secret_access_key="test", region_name=args.region
    )
    endpoints = kv(args.service_endpoint)
    unknown = set(endpoints) - set(SERVICE_OF_TYPE.values())
    if unknown:
        fail(f"--service-endpoint for {', '.join(sorted(unknown))}: only sns and sqs can be routed")
    if len(endpoints) == 1:
        fail("--service-endpoint: route sns and sqs together (the subscriber queue subscribes to the topic)")
    client = lambda svc: session.client(svc, endpoint_url=endpoints.get(svc, args.endpoint))  # noqa: E731

    routed = {t for t, svc in SERVICE_OF_TYPE.items() if svc in endpoints}
    skipped, dropped = create_cfn_stack(client("cloudformation"), tpl, resolver, args.stack_name, routed)
    dropped += create_routed({svc: client(svc) for svc in endpoints}, tpl, resolver, args.stack_name)
    fix_dynamodb(client("dynamodb"), tpl, resolver)
    record_sns_sqs_attrs(tpl, resolver)
    create_timestream(client("timestream-write"), tpl, resolver, args.stack_name)
    queue_url = create_alert_subscriber(
        client("sqs"), client("sns"), tpl, resolver, args.alert_queue or f"{args.stack_name}-alert-subscriber"
    )

    envs = function_environments(tpl, resolver)
    # `cargo lambda watch` gives all functions one environment: merge, and refuse
    # a key two functions would see with different values.
    merged: dict[str, str] = {}
    for binary, env in sorted(envs.items()):
        for k, v in env.items():
            if k in merged and merged[k] != v:
                fail(f"{k} differs between functions ({merged[k]!r} vs {v!r}); the local watch shares one env")
            merged[k] = v
    functions_env = {**kv(args.function_env), **merged}
    write_env(args.functions_env_file, functions_env)
    write_env(
        args.stack_env_file,
        {**kv(args.function_env), **kv(args.stack_env), "ALERT_QUEUE_URL": queue_url, **merged},
    )
    print(
        json.dumps(
            {
                "stack": args.stack_name,
                "resources": resolver.physical,
                "service_endpoints": endpoints,
                "functions": sorted(envs),
                "alert_queue_url": queue_url,
                "not_emulated": skipped,
                "dropped_properties": dropped,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

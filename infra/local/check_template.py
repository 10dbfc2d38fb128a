#!/usr/bin/env python3
"""Least-privilege check of template.yaml: no wildcard in any policy's actions or resources.

Translates the SAM template the way provision.py and `sam deploy` do (so the roles,
schedule roles and Lambda permissions SAM generates are checked too), then reads
every policy document in it:

- AWS::IAM::Role (inline policies; any managed policy fails: its statements are not
  in the template, and AWS's managed Lambda policies grant logs:* on "*"),
  AWS::IAM::Policy / ManagedPolicy,
- resource policies: AWS::SQS::QueuePolicy, AWS::SNS::TopicPolicy, AWS::KMS::Key,
- AWS::Lambda::Permission (its action and SourceArn).

Both branches of every Fn::If are checked. A statement fails when an action or a
resource holds `*` or `?` (`dynamodb:*`, `"*"`, `table/X/index/*`, ...), or when it
uses NotAction / NotResource, unless one of EXCEPTIONS below allows it - each says
why AWS requires it. Exits 1 naming every offending statement.

It checks the HTTP API's safeguards for many tenants (`operations_problems`): default
route throttling, an access log (request id, route, status, latency, integration
error, tenant claim) to a log group with a retention, and reserved concurrency on the
functions a request invokes (ingest, api).

It checks that no secret is in a function's environment (`secrets_problems`): no
Secrets Manager or SSM SecureString dynamic reference in any Environment, and every
function given the remote-write secret's name may read that secret, and no other.

It also checks the scheduled functions' shard fan-out (`fan_out_problems`): every
SQS event source is a FIFO queue with a FIFO dead-letter queue, a visibility timeout
of at least six times the function's timeout for every interval the template
allows, partial batch responses, a concurrency within the function's reserved
concurrency; the function sends to that queue (its coordinator), its role may send,
receive and delete there, its schedule asks to fan out; and alarms watch the
dead-letter queue's depth and each queue's oldest message.

Run with the local venv's python (it has samtranslator and cfn-lint):
    infra/local/.venv/bin/python infra/local/check_template.py --template template.yaml
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Parameters without a default: any value translates (they never reach a policy).
REQUIRED_PARAMS = {"JwtIssuer": "https://issuer.example/", "JwtAudience": "modelwatch"}


@dataclass
class Statement:
    where: str  # "IngestRole policy ingest statement Logs"
    kind: str  # "identity", "key", "queue", "topic", "lambda-permission"
    effect: str
    actions: list[str]  # rendered (intrinsics flattened, see render)
    resources: list[str]
    condition: Any
    raw: dict[str, Any]


# --------------------------------------------------------------------- rendering


def render(node: Any) -> str:
    """A value as text with intrinsics kept visible: Fn::Sub's template, ${Ref}."""
    if isinstance(node, str):
        return node
    if isinstance(node, (int, float, bool)):
        return str(node)
    if isinstance(node, list):
        return ",".join(render(x) for x in node)
    if isinstance(node, dict) and len(node) == 1:
        (key, arg), = node.items()
        if key == "Ref":
            return "${" + str(arg) + "}"
        if key == "Fn::GetAtt":
            return "${" + (arg if isinstance(arg, str) else ".".join(map(str, arg))) + "}"
        if key == "Fn::Sub":
            if isinstance(arg, str):
                return arg
            text, local = arg
            # Substitute the local variables' literal values: SAM's __Stage__ is "*".
            for name, value in local.items():
                text = text.replace("${" + name + "}", render(value))
            return text
        if key == "Fn::Join":
            sep, items = arg
            return sep.join(render(x) for x in (items if isinstance(items, list) else [items]))
        if key == "Fn::FindInMap" or key == "Fn::ImportValue" or key == "Fn::Select":
            return "${" + key + "}"
    return repr(node)


def branches(node: Any) -> Iterator[Any]:
    """Every value a node can take, one per combination of Fn::If branches."""
    if isinstance(node, dict) and set(node) == {"Fn::If"}:
        _, yes, no = node["Fn::If"]
        yield from branches(yes)
        yield from branches(no)
    elif isinstance(node, list):
        combos: list[list[Any]] = [[]]
        for item in node:
            combos = [c + [b] for c in combos for b in branches(item)]
        for combo in combos:
            yield [x for x in combo if not is_no_value(x)]
    elif isinstance(node, dict):
        combos_d: list[dict[str, Any]] = [{}]
        for key, value in node.items():
            combos_d = [{**c, key: b} for c in combos_d for b in branches(value)]
        yield from combos_d
    else:
        yield node


def is_no_value(node: Any) -> bool:
    return node == {"Ref": "AWS::NoValue"}


def as_list(node: Any) -> list[Any]:
    if node is None or is_no_value(node):
        return []
    return node if isinstance(node, list) else [node]


# --------------------------------------------------------------------- collection


def documents(tpl: dict[str, Any]) -> Iterator[tuple[str, str, Any]]:
    """(where, kind, policy document) of every policy in the translated template."""
    for logical, res in sorted(tpl["Resources"].items()):
        kind, props = res.get("Type"), res.get("Properties", {})
        if kind == "AWS::IAM::Role":
            for policy in as_list(props.get("Policies")):
                for p in branches(policy):
                    if p and not is_no_value(p):
                        yield f"{logical} policy {render(p.get('PolicyName'))}", "identity", p["PolicyDocument"]
        elif kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            yield f"{logical}", "identity", props.get("PolicyDocument")
        elif kind == "AWS::KMS::Key":
            yield f"{logical} key policy", "key", props.get("KeyPolicy")
        elif kind == "AWS::SQS::QueuePolicy":
            yield f"{logical} queue policy", "queue", props.get("PolicyDocument")
        elif kind == "AWS::SNS::TopicPolicy":
            yield f"{logical} topic policy", "topic", props.get("PolicyDocument")
        elif kind == "AWS::Lambda::Permission":
            yield (
                f"{logical} (Lambda permission)",
                "lambda-permission",
                {"Statement": [{"Effect": "Allow", "Action": props.get("Action"),
                                "Resource": props.get("SourceArn", []), "Sid": "SourceArn"}]},
            )


def statements(tpl: dict[str, Any]) -> Iterator[Statement]:
    """Every statement once, each Fn::If branch of it as a statement of its own."""
    seen: set[str] = set()
    for where, kind, doc in documents(tpl):
        for doc_variant in branches(doc):
            for i, st in enumerate(as_list((doc_variant or {}).get("Statement"))):
                if not isinstance(st, dict):
                    continue
                name = f"{where} statement {st.get('Sid', i + 1)}"
                key = name + json.dumps(st, sort_keys=True)
                if key in seen:
                    continue
                seen.add(key)
                yield Statement(
                    where=name,
                    kind=kind,
                    effect=str(st.get("Effect")),
                    actions=[render(a) for a in as_list(st.get("Action"))],
                    resources=[render(r) for r in as_list(st.get("Resource"))],
                    condition=st.get("Condition"),
                    raw=st,
                )


def managed_policies(tpl: dict[str, Any]) -> Iterator[str]:
    for logical, res in sorted(tpl["Resources"].items()):
        if res.get("Type") == "AWS::IAM::Role":
            for arn in as_list(res.get("Properties", {}).get("ManagedPolicyArns")):
                yield f"{logical} attaches managed policy {render(arn)}: its statements cannot be checked here"


# --------------------------------------------------------------------- exceptions


@dataclass
class Exception_:
    name: str
    why: str
    allows: Callable[[Statement, str, str], bool]  # (statement, "action"|"resource", value)


def _condition_key(st: Statement, operator: str, key: str) -> bool:
    cond = st.condition if isinstance(st.condition, dict) else {}
    return key in (cond.get(operator) or {})


LOG_STREAMS = re.compile(
    r"^arn:\$\{AWS::Partition\}:logs:\$\{AWS::Region\}:\$\{AWS::AccountId\}:log-group:\$\{[A-Za-z0-9]+LogGroup\}:\*$"
)
EXECUTE_API = re.compile(
    r"^arn:\$\{AWS::Partition\}:execute-api:\$\{AWS::Region\}:\$\{AWS::AccountId\}:\$\{[A-Za-z0-9]+\}/(.*)$"
)

EXCEPTIONS = [
    Exception_(
        "timestream:DescribeEndpoints on *",
        "DescribeEndpoints has no resource-level permissions (Timestream's endpoint discovery)",
        lambda st, what, v: what == "resource" and v == "*" and st.actions == ["timestream:DescribeEndpoints"],
    ),
    Exception_(
        "cloudwatch:PutMetricData on * with a namespace condition",
        "PutMetricData has no resource-level permissions; the cloudwatch:namespace condition scopes it",
        lambda st, what, v: what == "resource"
        and v == "*"
        and st.actions == ["cloudwatch:PutMetricData"]
        and _condition_key(st, "StringEquals", "cloudwatch:namespace"),
    ),
    Exception_(
        "the remote-write secret's random suffix",
        "Secrets Manager appends six random characters to a secret's name in its ARN; -?????? matches exactly those",
        lambda st, what, v: what == "resource"
        and st.actions == ["secretsmanager:GetSecretValue"]
        and v.endswith(":secret:${PrometheusRemoteWriteAuthSecret}-??????")
        and "*" not in v,
    ),
    Exception_(
        "sns:Unsubscribe on *",
        "Unsubscribe has no resource-level permissions (it names a subscription, not a topic); it removes only subscriptions the caller may see",
        lambda st, what, v: what == "resource" and v == "*" and st.actions == ["sns:Unsubscribe"],
    ),
    Exception_(
        "a key policy's Resource *",
        'in a KMS key policy "*" is the key itself (the only value AWS accepts)',
        lambda st, what, v: what == "resource" and v == "*" and st.kind == "key",
    ),
    Exception_(
        "the log streams of the function's own log group",
        "Lambda names its log streams at run time; <group ARN>:* is that one group's streams",
        lambda st, what, v: what == "resource"
        and st.kind == "identity"
        and set(st.actions) <= {"logs:CreateLogStream", "logs:PutLogEvents"}
        and bool(LOG_STREAMS.match(v)),
    ),
    Exception_(
        "API Gateway source ARNs of Lambda permissions",
        "API Gateway names the stage, an ANY method and each path parameter as * in a route's ARN",
        lambda st, what, v: what == "resource"
        and st.kind == "lambda-permission"
        and bool(EXECUTE_API.match(v))
        and all(seg == "*" or "*" not in seg for seg in EXECUTE_API.match(v).group(1).split("/")),
    ),
]


# --------------------------------------------------------------------- checking


def wildcard(value: str) -> bool:
    # ${...} are intrinsic references, not wildcards; look at the literal text only.
    literal = re.sub(r"\$\{[^}]*\}", "", value)
    return "*" in literal or "?" in literal


def problems(st: Statement) -> tuple[list[str], list[str]]:
    """(failures, exceptions used) of one statement."""
    failures, used = [], []
    for key in ("NotAction", "NotResource"):
        if key in st.raw and st.effect == "Allow":
            failures.append(f"uses {key} (allows everything else)")
    for what, values in (("action", st.actions), ("resource", st.resources)):
        for v in values:
            if not wildcard(v):
                continue
            allowed = [e for e in EXCEPTIONS if e.allows(st, what, v)]
            if allowed:
                used.append(allowed[0].name)
            elif st.effect == "Deny" and what == "resource":
                # A deny on a wildcard resource narrows, it grants nothing.
                used.append("a Deny statement")
            else:
                failures.append(f"{what} {v!r} is a wildcard")
    if st.effect == "Allow" and st.kind == "identity" and not st.resources:
        failures.append("has no Resource")
    return failures, used


def check(tpl: dict[str, Any]) -> tuple[list[str], dict[str, int], int]:
    failures: list[str] = list(managed_policies(tpl))
    used: dict[str, int] = {}
    count = 0
    for st in statements(tpl):
        count += 1
        fails, exc = problems(st)
        failures += [f"{st.where}: {f}" for f in fails]
        for e in exc:
            used[e] = used.get(e, 0) + 1
    return failures, used, count


# --------------------------------------------------------------------- fan-out


def resolve_all(node: Any, tpl: dict[str, Any]) -> list[Any]:
    """Every value `node` can take: a Fn::FindInMap over a parameter's mapping gives
    one value per top-level key of the map; a plain value gives itself."""
    if isinstance(node, dict) and "Fn::FindInMap" in node:
        name, top, second = node["Fn::FindInMap"]
        rows = tpl.get("Mappings", {}).get(name, {})
        if isinstance(top, dict):
            return [row[second] for row in rows.values()]
        return [rows[top][second]]
    return [node]


def ref_name(node: Any) -> str | None:
    """The logical id a Ref or Fn::GetAtt names."""
    if isinstance(node, dict):
        if "Ref" in node:
            return node["Ref"]
        if "Fn::GetAtt" in node:
            arg = node["Fn::GetAtt"]
            return (arg.split(".")[0] if isinstance(arg, str) else arg[0])
    return None


def role_grants(tpl: dict[str, Any], role: str, action: str, resource: str) -> bool:
    """Whether the role's inline policies allow `action` on the resource `resource` names."""
    props = tpl["Resources"].get(role, {}).get("Properties", {})
    for policy in props.get("Policies", []):
        for st in as_list(policy.get("PolicyDocument", {}).get("Statement", [])):
            if not isinstance(st, dict) or st.get("Effect") != "Allow":
                continue
            if action in as_list(st.get("Action")) and any(
                ref_name(r) == resource for r in as_list(st.get("Resource"))
            ):
                return True
    return False


def alarmed(tpl: dict[str, Any], queue: str, metric: str) -> bool:
    for res in tpl["Resources"].values():
        props = res.get("Properties", {})
        if res.get("Type") == "AWS::CloudWatch::Alarm" and props.get("MetricName") == metric:
            if any(ref_name(d.get("Value")) == queue for d in props.get("Dimensions", [])):
                return True
    return False


def fan_out_problems(tpl: dict[str, Any]) -> tuple[list[str], int]:
    """What is wrong with the shard queues and their functions; and how many there are."""
    resources = tpl["Resources"]
    problems_: list[str] = []
    mappings = 0
    for logical, res in resources.items():
        if res.get("Type") != "AWS::Lambda::EventSourceMapping":
            continue
        props = res["Properties"]
        queue = ref_name(props.get("EventSourceArn"))
        if resources.get(queue, {}).get("Type") != "AWS::SQS::Queue":
            continue
        mappings += 1
        fn = ref_name(props.get("FunctionName"))
        fprops = resources.get(fn, {}).get("Properties", {})
        qprops = resources[queue].get("Properties", {})
        where = f"{logical} ({queue} -> {fn})"
        if qprops.get("FifoQueue") is not True:
            problems_.append(f"{where}: the queue is not FIFO (one message in flight per shard range)")
        redrive = qprops.get("RedrivePolicy", {})
        dlq = ref_name(redrive.get("deadLetterTargetArn"))
        if dlq is None or resources.get(dlq, {}).get("Properties", {}).get("FifoQueue") is not True:
            problems_.append(f"{where}: no FIFO dead-letter queue in the RedrivePolicy")
        elif not alarmed(tpl, dlq, "ApproximateNumberOfMessagesVisible"):
            problems_.append(f"{where}: no alarm on the depth of the dead-letter queue {dlq}")
        if not isinstance(redrive.get("maxReceiveCount"), int) or redrive["maxReceiveCount"] < 1:
            problems_.append(f"{where}: the RedrivePolicy has no maxReceiveCount")
        timeouts = resolve_all(fprops.get("Timeout", 3), tpl)
        visibilities = resolve_all(qprops.get("VisibilityTimeout", 30), tpl)
        if len(timeouts) != len(visibilities) or any(
            int(v) < 6 * int(t) for v, t in zip(visibilities, timeouts)
        ):
            problems_.append(f"{where}: visibility timeouts {visibilities} are not 6 x the function's timeouts {timeouts}")
        if "ReportBatchItemFailures" not in as_list(props.get("FunctionResponseTypes")):
            problems_.append(f"{where}: no partial batch responses (one failed message would redo the others)")
        reserved = fprops.get("ReservedConcurrentExecutions")
        concurrency = props.get("ScalingConfig", {}).get("MaximumConcurrency")
        if not isinstance(reserved, int) or not isinstance(concurrency, int) or concurrency >= reserved:
            problems_.append(f"{where}: MaximumConcurrency {concurrency} must stay below the reserved concurrency {reserved} (the coordinator needs one)")
        variables = fprops.get("Environment", {}).get("Variables", {})
        if not any(ref_name(v) == queue for k, v in variables.items() if k.endswith("_SHARD_QUEUE_URL")):
            problems_.append(f"{where}: the function is not given the queue's URL (*_SHARD_QUEUE_URL)")
        role = ref_name(fprops.get("Role"))
        for action in (
            "sqs:SendMessage",
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ChangeMessageVisibility",
        ):
            if not role_grants(tpl, role, action, queue):
                problems_.append(f"{where}: the role {role} may not {action} on the queue")
        if not alarmed(tpl, queue, "ApproximateAgeOfOldestMessage"):
            problems_.append(f"{where}: no alarm on the age of the queue's oldest message")
        schedules = [
            r for r in resources.values()
            if r.get("Type") == "AWS::Scheduler::Schedule"
            and ref_name(r.get("Properties", {}).get("Target", {}).get("Arn")) == fn
        ]
        if not schedules or not all(
            '"fan_out":true' in render(r["Properties"]["Target"].get("Input", "")).replace(" ", "")
            for r in schedules
        ):
            problems_.append(f"{where}: the function's schedule does not ask to fan out")
    return problems_, mappings


def fan_out_self_test(tpl: dict[str, Any]) -> None:
    """Each thing fan_out_problems is for, broken in a copy of the template, is caught."""
    import copy

    esm = next(
        r["Properties"] for r in tpl["Resources"].values()
        if r.get("Type") == "AWS::Lambda::EventSourceMapping"
        and ref_name(r["Properties"].get("EventSourceArn")) in tpl["Resources"]
    )
    queue, fn = ref_name(esm["EventSourceArn"]), ref_name(esm["FunctionName"])

    def no_fifo(t):
        t["Resources"][queue]["Properties"]["FifoQueue"] = False

    def short_visibility(t):
        t["Resources"][queue]["Properties"]["VisibilityTimeout"] = 60

    def no_partial_batches(t):
        for r in t["Resources"].values():
            if r.get("Type") == "AWS::Lambda::EventSourceMapping":
                r["Properties"].pop("FunctionResponseTypes", None)

    def no_alarms(t):
        for name in [n for n, r in t["Resources"].items() if r.get("Type") == "AWS::CloudWatch::Alarm"]:
            del t["Resources"][name]

    def no_fan_out(t):
        for r in t["Resources"].values():
            if r.get("Type") == "AWS::Scheduler::Schedule":
                r["Properties"]["Target"]["Input"] = "{}"

    def no_queue_url(t):
        t["Resources"][fn]["Properties"]["Environment"]["Variables"] = {}

    for broken in (no_fifo, short_visibility, no_partial_batches, no_alarms, no_fan_out, no_queue_url):
        copied = copy.deepcopy(tpl)
        broken(copied)
        if not fan_out_problems(copied)[0]:
            raise SystemExit(f"check_template: self-test failed: {broken.__name__} was not caught")


# --------------------------------------------------------------------- operations

# Functions an HTTP request invokes: one tenant's burst must not take the account's
# concurrency from the others, nor be starved by them.
REQUEST_FUNCTIONS = ("ingest", "api")
# What the HTTP API's access log must say of every request.
ACCESS_LOG_FIELDS = ("$context.requestId", "$context.routeKey", "$context.status",
                     "$context.responseLatency", "$context.integrationErrorMessage",
                     "$context.authorizer.claims.")


def operations_problems(tpl: dict[str, Any]) -> list[str]:
    """Throttling on every HTTP API stage, reserved concurrency on the functions a
    request invokes, and an access log with the request, route, status, latency,
    integration error and tenant claim to a log group that expires its events."""
    resources = tpl.get("Resources", {})
    failures: list[str] = []
    stages = {k: v for k, v in resources.items() if v.get("Type") == "AWS::ApiGatewayV2::Stage"}
    if not stages:
        failures.append("no HTTP API stage")
    for name, stage in stages.items():
        props = stage.get("Properties", {})
        route = props.get("DefaultRouteSettings", {})
        for limit in ("ThrottlingRateLimit", "ThrottlingBurstLimit"):
            if route.get(limit) in (None, ""):
                failures.append(f"{name}: no DefaultRouteSettings.{limit}")
        log = props.get("AccessLogSettings", {})
        fmt = render(log.get("Format", ""))
        missing = [f for f in ACCESS_LOG_FIELDS if f not in fmt]
        if missing:
            failures.append(f"{name}: the access log format lacks {', '.join(missing)}")
        group = ref_name(log.get("DestinationArn"))
        target = resources.get(group or "", {})
        if target.get("Type") != "AWS::Logs::LogGroup":
            failures.append(f"{name}: the access log goes to no log group of the template")
        elif target.get("Properties", {}).get("RetentionInDays") in (None, ""):
            failures.append(f"{name}: the access log group {group} keeps its events forever")
    for function in REQUEST_FUNCTIONS:
        found = [
            (k, v) for k, v in resources.items()
            if v.get("Type") == "AWS::Lambda::Function"
            and render(v.get("Properties", {}).get("FunctionName", "")).endswith(f"-{function}")
        ]
        if not found:
            failures.append(f"no {function} function")
        for name, fn in found:
            if fn.get("Properties", {}).get("ReservedConcurrentExecutions") in (None, ""):
                failures.append(f"{name}: no ReservedConcurrentExecutions")
    return failures


# Dynamic references CloudFormation resolves into the value it deploys: in a function's
# Environment the secret would be readable by anyone allowed
# lambda:GetFunctionConfiguration, and rotating it would need a redeploy.
SECRET_REFERENCES = ("resolve:secretsmanager", "resolve:ssm-secure")
SECRET_VARIABLE = "PROMETHEUS_REMOTE_WRITE_AUTH_SECRET"


def secrets_problems(tpl: dict[str, Any]) -> list[str]:
    """Nothing secret in any function's environment, and a function that is given the
    remote-write secret's name may read that secret (and only a secret named by it)."""
    failures: list[str] = []
    for name, fn in sorted(tpl["Resources"].items()):
        if fn.get("Type") != "AWS::Lambda::Function":
            continue
        props = fn.get("Properties", {})
        environment = json.dumps(props.get("Environment", {}))
        failures += [
            f"{name}: its Environment holds a {ref} reference (a secret in plain text)"
            for ref in SECRET_REFERENCES
            if ref in environment
        ]
        if SECRET_VARIABLE not in props.get("Environment", {}).get("Variables", {}):
            continue
        role = ref_name(props.get("Role"))
        reads = [
            st for st in statements(tpl)
            if st.where.startswith(f"{role} ") and st.effect == "Allow"
            and "secretsmanager:GetSecretValue" in st.actions
        ]
        if not reads:
            failures.append(f"{name}: is given {SECRET_VARIABLE} but its role {role} may not read it")
        failures += [
            f"{st.where}: GetSecretValue on {r!r}, not the remote-write secret"
            for st in reads for r in st.resources if "PrometheusRemoteWriteAuthSecret" not in r
        ]
    return failures


def secrets_self_test(tpl: dict[str, Any]) -> None:
    """A resolved secret in an Environment and a missing grant are both reported."""
    import copy

    def aggregate(t: dict[str, Any]) -> dict[str, Any]:
        return next(v["Properties"] for v in t["Resources"].values()
                    if v["Type"] == "AWS::Lambda::Function"
                    and SECRET_VARIABLE in v["Properties"].get("Environment", {}).get("Variables", {}))

    def resolved(t: dict[str, Any]) -> None:
        aggregate(t)["Environment"]["Variables"]["PROMETHEUS_REMOTE_WRITE_AUTH"] = {
            "Fn::Sub": "{{resolve:secretsmanager:${PrometheusRemoteWriteAuthSecret}}}"}

    def ungranted(t: dict[str, Any]) -> None:
        role = t["Resources"][ref_name(aggregate(t)["Role"])]["Properties"]
        for policy in role["Policies"]:
            policy["PolicyDocument"]["Statement"] = [
                st for st in policy["PolicyDocument"]["Statement"]
                if "GetSecretValue" not in json.dumps(st)]

    for expected, mutate in (("resolve:secretsmanager", resolved), ("may not read it", ungranted)):
        broken = copy.deepcopy(tpl)
        mutate(broken)
        found = secrets_problems(broken)
        assert any(expected in f for f in found), f"secrets check missed {expected}: {found}"


def operations_self_test(tpl: dict[str, Any]) -> None:
    """Each missing safeguard is reported."""
    import copy

    def stage(t: dict[str, Any]) -> dict[str, Any]:
        return next(v["Properties"] for v in t["Resources"].values()
                    if v["Type"] == "AWS::ApiGatewayV2::Stage")

    def function(t: dict[str, Any], suffix: str) -> dict[str, Any]:
        return next(v["Properties"] for v in t["Resources"].values()
                    if v["Type"] == "AWS::Lambda::Function"
                    and render(v["Properties"].get("FunctionName", "")).endswith(suffix))

    def retention(t: dict[str, Any]) -> dict[str, Any]:
        return t["Resources"][ref_name(stage(t)["AccessLogSettings"]["DestinationArn"])]["Properties"]

    mutations: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
        ("ThrottlingRateLimit", lambda t: stage(t)["DefaultRouteSettings"].pop("ThrottlingRateLimit")),
        ("ThrottlingBurstLimit", lambda t: stage(t).pop("DefaultRouteSettings")),
        ("$context.authorizer.claims.", lambda t: stage(t)["AccessLogSettings"].update(Format="$context.requestId")),
        ("no log group", lambda t: stage(t).pop("AccessLogSettings")),
        ("forever", lambda t: retention(t).pop("RetentionInDays")),
        ("ReservedConcurrentExecutions", lambda t: function(t, "-ingest").pop("ReservedConcurrentExecutions")),
        ("ReservedConcurrentExecutions", lambda t: function(t, "-api").pop("ReservedConcurrentExecutions")),
    ]
    for expected, mutate in mutations:
        broken = copy.deepcopy(tpl)
        mutate(broken)
        found = operations_problems(broken)
        assert any(expected in f for f in found), f"operations check missed {expected}: {found}"


def self_test() -> None:
    """The checker must catch what it is for: a few statements it has to refuse."""
    def role(statement: dict[str, Any]) -> dict[str, Any]:
        return {"Resources": {"R": {"Type": "AWS::IAM::Role", "Properties": {"Policies": [
            {"PolicyName": "p", "PolicyDocument": {"Statement": [statement]}}]}}}}

    table = {"Fn::GetAtt": ["T", "Arn"]}
    must_fail = {
        "service:* action": {"Effect": "Allow", "Action": "dynamodb:*", "Resource": table},
        "Resource *": {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "*"},
        "index ARN": {"Effect": "Allow", "Action": "dynamodb:Query",
                      "Resource": {"Fn::Sub": "${T.Arn}/index/*"}},
        "prefix action": {"Effect": "Allow", "Action": ["dynamodb:Get*"], "Resource": table},
        "wildcard in an If branch": {"Effect": "Allow", "Action": "sns:Publish",
                                     "Resource": {"Fn::If": ["C", {"Ref": "X"}, "*"]}},
        "NotAction": {"Effect": "Allow", "NotAction": "iam:PassRole", "Resource": table},
        "PutMetricData without namespace": {"Effect": "Allow", "Action": "cloudwatch:PutMetricData",
                                            "Resource": "*"},
        "log group wildcard": {"Effect": "Allow", "Action": "logs:PutLogEvents",
                               "Resource": "arn:aws:logs:*:*:*"},
    }
    for name, st in must_fail.items():
        failures, _, _ = check(role(st))
        if not failures:
            raise SystemExit(f"check_template: self-test failed: {name} was not refused")
    ok = {"Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": table}
    failures, _, _ = check(role(ok))
    if failures:
        raise SystemExit(f"check_template: self-test failed: a plain statement was refused: {failures}")


def fail_on(failures: list[str], what: str) -> None:
    """Exits 1 listing `failures` under `what`, if there are any."""
    if failures:
        print(f"check_template: {what}:", file=sys.stderr)
        for f in failures:
            print(f"  {f}", file=sys.stderr)
        sys.exit(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--template", required=True, type=Path)
    args = ap.parse_args()
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # the translator wants a region
    from provision import load_and_translate

    self_test()
    tpl = load_and_translate(args.template, dict(REQUIRED_PARAMS))
    failures, used, count = check(tpl)
    if failures:
        print(f"check_template: {len(failures)} wildcard(s) beyond the listed exceptions:", file=sys.stderr)
        for f in failures:
            print(f"  {f}", file=sys.stderr)
        sys.exit(1)
    fan_out_self_test(tpl)
    fan_out, mappings = fan_out_problems(tpl)
    fail_on(fan_out or ([] if mappings else ["no function has a shard queue"]),
            "the shard fan-out is not as it must be")
    operations_self_test(tpl)
    fail_on(operations_problems(tpl), "the HTTP API is not safe to share between tenants")
    secrets_self_test(tpl)
    fail_on(secrets_problems(tpl), "a secret is not kept out of the functions' configuration")
    print(f"check_template: {mappings} shard queues, each FIFO with a dead-letter queue, alarms, its coordinator's and poller's permissions")
    print("check_template: no secret in any function's environment; the remote-write secret is read at run time by the functions given its name, each allowed that secret only")
    print("check_template: the HTTP API throttles every route, logs every request (tenant claim included) to an expiring log group; ingest and api have reserved concurrency")
    print(f"check_template: {count} policy statements, no wildcard beyond these exceptions:")
    for e in EXCEPTIONS:
        print(f"  {used.get(e.name, 0):3d} x {e.name}: {e.why}")
    if used.get("a Deny statement"):
        print(f"  {used['a Deny statement']:3d} x a Deny statement (narrows access, grants nothing)")


if __name__ == "__main__":
    main()

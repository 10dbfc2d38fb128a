"""moto_speedups answers as moto does: the same generated operations, run against moto
with and without the speed-ups (each in its own process, since they patch classes),
must give the same answers, the same errors and the same final tables.

The operations are what the functions send: puts, conditional updates (several update
expressions, some that moto refuses), transactions over two tables, some of them
cancelled by a failing condition (the rollback path), deletes, and queries by
partition with range conditions, both directions and pages.

    infra/local/.venv/bin/python -m pytest infra/local/tests
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

LOCAL_DIR = Path(__file__).resolve().parent.parent

# Runs the operations on stdin against in-process moto and prints every answer.
RUNNER = r"""
import json, sys
import boto3
from botocore.exceptions import ClientError
from moto import mock_aws

sys.path.insert(0, sys.argv[1])
if sys.argv[2] == "patched":
    import moto_speedups
    moto_speedups.install()

ops = json.load(sys.stdin)
answers = []
with mock_aws():
    db = boto3.client("dynamodb", region_name="eu-west-1")
    db.create_table(
        TableName="ranged",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    db.create_table(
        TableName="flat",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for name, kwargs in ops:
        try:
            answer = getattr(db, name)(**kwargs)
            answer.pop("ResponseMetadata", None)
            answers.append(answer)
        except ClientError as e:
            answers.append({"error": e.response["Error"]["Code"],
                            "reasons": [r.get("Code") for r in e.response.get("CancellationReasons", [])]})
    for table in ("ranged", "flat"):
        answers.append(sorted(db.scan(TableName=table)["Items"], key=json.dumps))
print(json.dumps(answers, sort_keys=True, default=str))
"""


def s(value: str) -> dict[str, str]:
    return {"S": value}


def generated_operations(seed: int, count: int) -> list[tuple[str, dict[str, Any]]]:
    rng = random.Random(seed)
    partitions = [f"P#{i}" for i in range(4)]
    sorts = [f"M#{i:02}" for i in range(12)]

    def ranged_key() -> dict[str, Any]:
        return {"pk": s(rng.choice(partitions)), "sk": s(rng.choice(sorts))}

    def flat_key() -> dict[str, Any]:
        return {"pk": s(rng.choice(partitions))}

    def counter_update(table: str, key: dict[str, Any], in_transaction: bool = False) -> dict[str, Any]:
        # Update expressions as the stores write them, and some moto must refuse
        # (overlapping paths, a syntax error, a key attribute): the text, its names, its values.
        one, tag = {":one": {"N": "1"}}, {":tag": s(rng.choice("abc"))}
        expressions: list[tuple[str, dict[str, str], dict[str, Any]]] = [
            ("ADD n :one SET tag = :tag", {}, {**one, **tag}),
            ("SET #doc = :doc, version = if_not_exists(version, :zero) + :one",
             {"#doc": "doc"}, {":doc": s(rng.choice("xyz")), ":zero": {"N": "0"}, **one}),
            ("SET tags = list_append(if_not_exists(tags, :empty), :more)",
             {}, {":empty": {"L": []}, ":more": {"L": [s(rng.choice("abc"))]}}),
            ("REMOVE tag SET n = if_not_exists(n, :one) - :one", {}, one),
            ("ADD members :members", {}, {":members": {"SS": rng.sample(["a", "b", "c"], 2)}}),
            ("SET state = :state, #v.#w = :one", {"#v": "nested", "#w": "w"},
             {":state": {"B": rng.choice(["AAEC", "/w=="])}, **one}),
            ("SET n = :one, n = :one", {}, one),
            ("SET = :one", {}, one),
            ("SET pk = :tag", {}, tag),
        ]
        text, names, values = rng.choice(expressions)
        update: dict[str, Any] = {
            "TableName": table,
            "Key": key,
            "UpdateExpression": text,
            "ExpressionAttributeValues": dict(values),
        }
        if names:
            update["ExpressionAttributeNames"] = names
        if not in_transaction and rng.random() < 0.3:
            update["ReturnValues"] = rng.choice(["ALL_NEW", "UPDATED_OLD", "ALL_OLD"])
        if rng.random() < 0.4:
            # Fails once the counter is past the bound: the cancelled transactions.
            update["ConditionExpression"] = "attribute_not_exists(n) OR n < :most"
            update["ExpressionAttributeValues"][":most"] = {"N": str(rng.randint(0, 3))}
        return update

    ops: list[tuple[str, dict[str, Any]]] = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.2:
            item = {**ranged_key(), "v": {"N": str(rng.randint(0, 9))}}
            ops.append(("put_item", {"TableName": "ranged", "Item": item}))
        elif roll < 0.35:
            ops.append(("update_item", counter_update("ranged", ranged_key())))
        elif roll < 0.6:
            actions: list[dict[str, Any]] = []
            used: set[str] = set()
            for _ in range(rng.randint(1, 4)):
                table = rng.choice(["ranged", "flat"])
                key = ranged_key() if table == "ranged" else flat_key()
                if json.dumps([table, key], sort_keys=True) in used:
                    continue
                used.add(json.dumps([table, key], sort_keys=True))
                kind = rng.choice(["Put", "Update", "Update", "Delete", "ConditionCheck"])
                if kind == "Put":
                    actions.append({"Put": {"TableName": table, "Item": {**key, "v": {"N": "7"}},
                                            "ConditionExpression": "attribute_not_exists(pk)"}})
                elif kind == "Update":
                    actions.append({"Update": counter_update(table, key, in_transaction=True)})
                elif kind == "Delete":
                    actions.append({"Delete": {"TableName": table, "Key": key}})
                else:
                    actions.append({"ConditionCheck": {"TableName": table, "Key": key,
                                                       "ConditionExpression": "attribute_exists(pk)"}})
            ops.append(("transact_write_items", {"TransactItems": actions}))
        elif roll < 0.65:
            ops.append(("delete_item", {"TableName": rng.choice(["ranged"]), "Key": ranged_key()}))
        elif roll < 0.7:
            ops.append(("get_item", {"TableName": "flat", "Key": flat_key()}))
        else:
            low, high = sorted(rng.sample(sorts, 2))
            condition, values = rng.choice([
                ("pk = :p", {}),
                ("pk = :p AND sk BETWEEN :lo AND :hi", {":lo": s(low), ":hi": s(high)}),
                ("pk = :p AND begins_with(sk, :pre)", {":pre": s("M#0")}),
                ("pk = :p AND sk > :lo", {":lo": s(low)}),
            ])
            query: dict[str, Any] = {
                "TableName": "ranged",
                "KeyConditionExpression": condition,
                "ExpressionAttributeValues": {":p": s(rng.choice(partitions + ["P#none"])), **values},
                "ScanIndexForward": rng.random() < 0.5,
            }
            if rng.random() < 0.5:
                query["Limit"] = rng.randint(1, 4)
            if rng.random() < 0.3:
                query["ExclusiveStartKey"] = ranged_key()
            ops.append(("query", query))
    return ops


def answers(ops: list[tuple[str, dict[str, Any]]], mode: str) -> Any:
    run = subprocess.run(
        [sys.executable, "-c", RUNNER, str(LOCAL_DIR), mode],
        input=json.dumps(ops),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(run.stdout)


def test_the_speedups_answer_as_moto_does() -> None:
    for seed in range(3):
        ops = generated_operations(seed, 400)
        plain, patched = answers(ops, "plain"), answers(ops, "patched")
        assert len(plain) == len(ops) + 2
        for index, (op, expected, got) in enumerate(zip(ops, plain, patched)):
            assert got == expected, f"seed {seed}, operation {index} {op}"
        assert patched[-2:] == plain[-2:], f"seed {seed}: final tables differ"


def test_the_generated_operations_reach_every_path() -> None:
    """The comparison means something only if cancelled transactions, paged queries,
    answered queries and applied and refused updates all occur."""
    ops = generated_operations(0, 400)
    plain = answers(ops, "plain")
    outcomes = list(zip(ops, plain))
    cancelled = [a for (name, _), a in outcomes if name == "transact_write_items" and "error" in a]
    committed = [a for (name, _), a in outcomes if name == "transact_write_items" and "error" not in a]
    paged = [a for (name, _), a in outcomes if name == "query" and "LastEvaluatedKey" in a]
    found = [a for (name, _), a in outcomes if name == "query" and a.get("Count", 0) > 0]
    assert len(cancelled) >= 10 and len(committed) >= 10
    assert len(paged) >= 5 and len(found) >= 20
    # Every update expression is applied somewhere, or refused as moto refuses it.
    updates = [(op["UpdateExpression"], "error" in a) for (name, op), a in outcomes if name == "update_item"]
    refused = {text for text, failed in updates if failed}
    applied = {text for text, failed in updates if not failed}
    assert {"SET n = :one, n = :one", "SET = :one", "SET pk = :tag"} <= refused - applied
    assert len(applied) >= 5, applied

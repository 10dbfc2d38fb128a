"""Speed-ups of moto's DynamoDB for the local stack, with the same answers.

moto keeps every table in a dict of partitions, but answers a Query by sorting every
item of the table and then filtering by partition key, and snapshots a
TransactWriteItems by deep-copying every table it names. Both cost the size of the
table per call, and moto never expires items by TTL, so a stack slowed down as the
suite and the demo filled it: the emulator, not the functions, was the time of the
end-to-end tests. `install()` replaces the two with the work real DynamoDB does:

- a Query on the table reads only the queried partition (a Query on an index is
  left as it is: the registry's one index is read once per shard and evaluation);
- a transaction snapshots only the items it names (the table object and its
  partition maps are copied shallowly; the named items deeply), which is all that a
  rollback has to restore, since the transaction changes nothing else;
- an update expression is parsed once per text, not twice per request, and each
  validation copies the parsed tree by unpickling it rather than deep-copying it
  (py-spy on the demo's moto, GIL held: parsing 6 %, the copy 10 % of its time);
- the server reads moto's package directory once, not once per request.

Profile that found them: py-spy on the demo's moto (`Table.all_items` under
`Table.query`, `deepcopy` under `transact_write_items`). Checked against the pinned
moto (constraints.txt); `install()` refuses another version rather than guess.
"""

from __future__ import annotations

import copy
import functools
import logging
import pickle
from typing import Any

import moto
from moto import backends
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.dynamodb.parsing import validators
from moto.dynamodb.parsing.expressions import UpdateExpressionParser

CHECKED_VERSION = "5.2.5"
# The attribute of a cached update-expression tree that holds its pickle.
PICKLED = "_moto_speedups_pickled"


def _partition(table: Table, hash_key: Any) -> list[Any]:
    """The items of one partition, in any order (moto sorts a query's candidates itself)."""
    partition = table.items.get(hash_key)
    if partition is None:
        return []
    return list(partition.values()) if table.range_key_attr else [partition]


def _install_query() -> None:
    query = Table.query
    all_items = Table.all_items

    def narrowed_all_items(self: Table) -> list[Any]:
        candidates = self.__dict__.get("_candidates")
        return all_items(self) if candidates is None else candidates

    def partition_query(self: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        # Positional as DynamoDBBackend.query passes them: index_name is the 7th after hash_key.
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        if index_name is not None or hash_key is None:
            return query(self, hash_key, *args, **kwargs)
        self.__dict__["_candidates"] = _partition(self, hash_key)
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            del self.__dict__["_candidates"]

    Table.all_items = narrowed_all_items  # type: ignore[method-assign]
    Table.query = partition_query  # type: ignore[method-assign]


def _snapshot(table: Table, keys: list[dict[str, Any]]) -> Table:
    """A copy of `table` as a rollback needs it: the named items deep, the rest shared."""
    clone = copy.copy(table)
    clone.items = copy.copy(table.items)
    for key in keys:
        hash_value = DynamoType(key[table.hash_key_attr])
        if table.range_key_attr is None:
            if hash_value in table.items:
                clone.items[hash_value] = copy.deepcopy(table.items[hash_value])
            continue
        partition = table.items.get(hash_value)
        if partition is None:
            continue
        clone_partition = clone.items[hash_value]
        if clone_partition is partition:
            clone_partition = clone.items[hash_value] = dict(partition)
        range_value = DynamoType(key[table.range_key_attr])
        if range_value in partition:
            clone_partition[range_value] = copy.deepcopy(partition[range_value])
    return clone


def _install_transactions() -> None:
    transact_write_items = DynamoDBBackend.transact_write_items

    def snapshotting(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        keys: dict[str, list[dict[str, Any]]] = {}
        for item in transact_items:
            _, op = next(iter(item.items()))
            name = op.get("TableName")
            if name in self.tables:
                table = self.tables[name]
                key = op.get("Key") or {
                    attr: op["Item"][attr]
                    for attr in (table.hash_key_attr, table.range_key_attr)
                    if attr is not None and attr in op.get("Item", {})
                }
                if table.hash_key_attr in key and (
                    table.range_key_attr is None or table.range_key_attr in key
                ):
                    keys.setdefault(name, []).append(key)
        snapshots = {name: _snapshot(self.tables[name], named) for name, named in keys.items()}
        real_deepcopy = copy.deepcopy

        def deepcopy(value: Any, memo: Any = None) -> Any:
            # moto's own snapshot of a whole table: ours instead.
            if isinstance(value, Table) and value.name in snapshots:
                return snapshots[value.name]
            return real_deepcopy(value, memo)

        copy.deepcopy = deepcopy
        try:
            transact_write_items(self, transact_items)
        finally:
            copy.deepcopy = real_deepcopy

    DynamoDBBackend.transact_write_items = snapshotting  # type: ignore[method-assign]


def _install_update_expressions() -> None:
    # moto parses an update expression twice per request (the handler and the backend)
    # and deep-copies the parsed tree for every validation; the tree depends on the
    # expression's text only, and the functions send a handful of texts. Parsed once
    # per text, the tree is kept with its pickle, and a validation unpickles its copy
    # (C code) instead of deep-copying it (Python code). Nothing mutates the cached
    # tree: the handlers only read it, the validator works on its copy.
    parse = functools.lru_cache(maxsize=1024)(UpdateExpressionParser.make.__func__)

    def make(cls: type, expression: str) -> Any:
        tree = parse(cls, expression)
        if PICKLED not in tree.__dict__:
            tree.__dict__[PICKLED] = pickle.dumps(tree, pickle.HIGHEST_PROTOCOL)
        return tree

    def deepcopy(value: Any, memo: Any = None) -> Any:
        pickled = getattr(value, PICKLED, None)
        if pickled is not None and memo is None:
            return pickle.loads(pickled)
        return copy.deepcopy(value, memo)

    UpdateExpressionParser.make = classmethod(make)  # type: ignore[method-assign, assignment]
    validators.deepcopy = deepcopy  # type: ignore[attr-defined]


def install() -> None:
    """Installs the speed-ups, and turns off werkzeug's line per request."""
    if moto.__version__ != CHECKED_VERSION:
        raise SystemExit(
            f"moto_speedups: checked against moto {CHECKED_VERSION}, found {moto.__version__}"
        )
    _install_query()
    _install_transactions()
    _install_update_expressions()
    # The server looks each request's host up in moto's package directory listing.
    listing = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = functools.cache(lambda: listing)  # type: ignore[assignment]
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

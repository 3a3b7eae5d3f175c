"""The pinned moto server with its DynamoDB hot paths made fast and lean, for `make bench` and
`make demo` (not the tests, which run the pinned moto as it is, checks and all).

moto answers a DynamoDB Query by walking every item of the table, sorting the partition and
skipping to the start key, for every 1 MB page: a listing's read is quadratic in the table's size.
It then turns each item into its wire form through a generic, model-driven serializer at a few
milliseconds an item. At 100,000 sessions one read of a listing took 17.8 minutes; at 1,000,000 it
would take days, and the benchmark would measure moto, not the archiver.

This module changes how moto computes six things and nothing else it answers:

* Query on a table's own key hands moto's own Query only the items that can make the page: the
  partition's items after the start key in key order (before it, backwards, for a reverse Query
  such as the run manifests'), the sorted keys kept until a put or a delete, as many as fit a
  page plus one.
  moto then applies its conditions, limits, projection and `LastEvaluatedKey` as it always does.
* An item is checked against the size limit once, not once per attribute as it is built.
* Item-bearing results (Query, Scan, GetItem, BatchGetItem, writes) are written as JSON directly:
  DynamoDB's wire format is the JSON of the attribute values, blobs base64'd.
* A projection onto top-level attributes of scalar types (S, N, BOOL, NULL) copies those
  attributes, numbers normalised as moto's round trip through Python values normalises them;
  moto converts the whole item to Python values and back once for every projected attribute.
* The server finds a request's backend once for each host, not by listing moto's package
  directory and matching every service's URL patterns for every request.
* A DynamoDB item is not entered in moto's register of model instances (kept for its reset and
  its model dashboard, neither of which the bench uses), which holds every instance ever made:
  every item a Query copied or projected stayed alive, and a million-session bench's moto grew
  past 12 GiB.

The server also logs no line per request (the bench sends its output nowhere), and carries what
the tests' moto adds (`local_moto.py`: AssumeRole checking the role and its trust as STS does, and
Account Management's region opt-in), so the organization bench runs on it too.

`bench-moto-server --self-check` answers a set of requests (every attribute type, page sizes,
start keys, key conditions, reverse order, batch reads) with and without the change and fails on
any response that differs, or on any item left alive that no table holds; a test in `make test`
runs it. Any other arguments go to moto's server, as `make bench` starts it.
"""

import base64
import bisect
import datetime
import decimal
import gc
import json
import logging
import sys
import threading

import local_moto  # noqa: F401  (its checks are installed when it is imported)
from moto.dynamodb import responses as dynamodb_responses
from moto.dynamodb.models import table as dynamodb_table
from moto.dynamodb.exceptions import ItemSizeTooLarge
from moto.dynamodb.models import dynamo_type
from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict
from moto.dynamodb.models.utilities import bytesize
from moto.moto_server import werkzeug_app
from boto3.dynamodb.types import DYNAMODB_CONTEXT

ENABLED = True

# Operations whose results are attribute maps and plain scalars, written as JSON directly.
DIRECT_JSON_OPERATIONS = {
    "Query",
    "Scan",
    "GetItem",
    "BatchGetItem",
    "PutItem",
    "DeleteItem",
    "UpdateItem",
    "BatchWriteItem",
    "TransactGetItems",
    "TransactWriteItems",
}

_original_execute_result = dynamodb_responses.DynamoResult.execute_result
_original_query = dynamodb_table.Table.query
_original_all_items = dynamodb_table.Table.all_items
_original_item_init = dynamo_type.Item.__init__
_narrowed = threading.local()
_original_put_item = dynamodb_table.Table.put_item
_original_delete_item = dynamodb_table.Table.delete_item
_original_project = dynamo_type.Item.project
_original_backend_for_host = werkzeug_app.DomainDispatcherApplication.get_backend_for_host
_sorted_key_cache = {}
# Attribute types whose projection is a plain copy (a number also normalised, as moto's round trip does).
PLAIN_PROJECTION_TYPES = {"S", "N", "BOOL", "NULL"}
# moto's item size limit (LimitedSizeDict): DynamoDB's 400 KB, as moto measured it.
ITEM_SIZE_LIMIT = 405000


def _json_value(value):
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def _without_none(value):
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def execute_result(self, context):
    if not ENABLED or context.operation_model.name not in DIRECT_JSON_OPERATIONS or not isinstance(self.result, dict):
        return _original_execute_result(self, context)
    body = json.dumps(_without_none(self.result), default=_json_value, separators=(",", ":"))
    return 200, {"Content-Type": "application/x-amz-json-1.0"}, body


def item_init(self, hash_key, range_key, attrs):
    """An item checked against the 400 KB limit once, not once per attribute (quadratic in attributes)."""
    if not ENABLED:
        return _original_item_init(self, hash_key, range_key, attrs)
    converted = {key: DynamoType(value) for key, value in attrs.items()}
    if sum(bytesize(key) + value.size() for key, value in converted.items()) > ITEM_SIZE_LIMIT:
        raise ItemSizeTooLarge
    self.hash_key = hash_key
    self.range_key = range_key
    self.attrs = LimitedSizeDict.__new__(LimitedSizeDict)
    dict.update(self.attrs, converted)


def item_new(cls, *args, **kwargs):
    """An item moto does not register: moto's models keep every instance ever made in a class list
    (for its reset and model dashboard), so every item a Query copies or projects stayed alive."""
    return object.__new__(cls)


def put_item(self, *args, **kwargs):
    self._bench_version = getattr(self, "_bench_version", 0) + 1
    return _original_put_item(self, *args, **kwargs)


def delete_item(self, *args, **kwargs):
    self._bench_version = getattr(self, "_bench_version", 0) + 1
    return _original_delete_item(self, *args, **kwargs)


def item_project(self, projection_expressions):
    """A projection onto top-level scalar attributes copies them; anything else is moto's."""
    if not ENABLED or any(len(path) != 1 or "[" in path[0] for path in projection_expressions):
        return _original_project(self, projection_expressions)
    attrs = {}
    for (name,) in projection_expressions:
        value = self.attrs.get(name)
        if value is None:
            continue
        if value.type not in PLAIN_PROJECTION_TYPES:
            return _original_project(self, projection_expressions)
        plain = str(DYNAMODB_CONTEXT.create_decimal(value.value)) if value.type == "N" else value.value
        attrs[name] = {value.type: plain}
    return dynamo_type.Item(hash_key=self.hash_key, range_key=self.range_key, attrs=attrs)


def backend_for_host(self, host):
    """The backend for a host, found once: moto's answer depends on the host alone."""
    if not ENABLED:
        return _original_backend_for_host(self, host)
    cache = self.__dict__.setdefault("_bench_backends", {})
    if host not in cache:
        cache[host] = _original_backend_for_host(self, host)
    return cache[host]


def all_items(self):
    narrowed = getattr(_narrowed, "items", None)
    if narrowed is not None and narrowed[0] is self:
        return narrowed[1]
    return _original_all_items(self)


def _sorted_keys(table, hash_key, partition):
    """The partition's sort keys in order, kept until the partition's keys change (a put or a
    delete bumps the table's version): sorting a million keys for every page would make a
    listing's read quadratic again."""
    version = getattr(table, "_bench_version", 0)
    cached = _sorted_key_cache.get((id(table), hash_key))
    if cached and cached[0] == version and cached[1] is table and len(cached[2]) == len(partition):
        return cached[2]
    keys = sorted(partition, key=lambda k: k.cast_value)
    _sorted_key_cache[(id(table), hash_key)] = (version, table, keys)
    return keys


def _page_candidates(table, hash_key, exclusive_start_key, limit, forward):
    """The partition's items after the start key (before it, backwards), in key order, enough to
    fill one page and one more."""
    partition = table.items.get(hash_key)  # .get: the defaultdict adds no empty partition
    if not partition:
        return []
    keys = _sorted_keys(table, hash_key, partition)
    start = DynamoType(exclusive_start_key[table.range_key_attr]).cast_value if exclusive_start_key else None
    if forward:
        ordered = keys[bisect.bisect_right(keys, start, key=lambda k: k.cast_value):] if start is not None else keys
    else:
        end = bisect.bisect_left(keys, start, key=lambda k: k.cast_value) if start is not None else len(keys)
        ordered = reversed(keys[:end])
    candidates, size = [], 0
    for key in ordered:
        item = partition[key]
        candidates.append(item)
        size += item.size()
        if (limit and len(candidates) > limit) or size > dynamodb_table.RESULT_SIZE_LIMIT:
            break
    return candidates


def query(self, hash_key, range_comparison, range_objs, limit, exclusive_start_key, scan_index_forward,
          projection_expressions, index_name=None, consistent_read=False, filter_expression=None,
          hash_key_conditions=None, range_key_conditions=None, **filter_kwargs):
    args = (hash_key, range_comparison, range_objs, limit, exclusive_start_key, scan_index_forward,
            projection_expressions, index_name, consistent_read, filter_expression)
    kwargs = dict(filter_kwargs, hash_key_conditions=hash_key_conditions, range_key_conditions=range_key_conditions)
    # Conditions on the sort key skip items without counting them toward the page: leave those to moto.
    plain = ENABLED and self.range_key_attr and not index_name and not range_comparison and not filter_kwargs
    if not plain or hash_key is None:
        return _original_query(self, *args, **kwargs)
    forward = scan_index_forward is not False
    _narrowed.items = (self, _page_candidates(self, hash_key, exclusive_start_key, limit, forward))
    try:
        return _original_query(self, *args, **kwargs)
    finally:
        _narrowed.items = None


dynamodb_responses.DynamoResult.execute_result = execute_result
dynamodb_table.Table.all_items = all_items
dynamodb_table.Table.query = query
dynamodb_table.Table.put_item = put_item
dynamodb_table.Table.delete_item = delete_item
dynamo_type.Item.__init__ = item_init
dynamo_type.Item.__new__ = staticmethod(item_new)
dynamo_type.Item.project = item_project
werkzeug_app.DomainDispatcherApplication.get_backend_for_host = backend_for_host


def self_check():
    """Every request answered the same with and without the change, as the SDK parses it and as JSON."""
    global ENABLED
    import random

    import boto3
    from moto import mock_aws

    rng = random.Random(7)
    failures = []
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="t",
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}],
        )
        for p in range(3):
            for i in range(rng.randrange(200, 400)):
                item = {
                    "pk": {"S": f"part#{p}"},
                    "sk": {"S": f"{rng.choice(['a', 'b', 'é', 'Z'])}{rng.randrange(10**9):09d}"},
                    "s": {"S": "x" * rng.randrange(0, 8000)},
                    "n": {"N": str(rng.randrange(-10**6, 10**6) / 7)},
                    "q": {"N": rng.choice(["0100", "1E+3", "-0", "1.50", "12345678901234567890123456789012345678"])},
                    "b": {"B": bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))},
                    "t": {"BOOL": bool(i % 2)},
                    "z": {"NULL": True},
                    "m": {"M": {"k": {"S": "v"}, "l": {"L": [{"N": "1"}, {"S": "two"}, {"B": b"\x00\x01"}]}}},
                    "ss": {"SS": ["a", "b"]},
                    "ns": {"NS": ["1", "2.5"]},
                    "bs": {"BS": [b"\x02", b"\x03"]},
                }
                client.put_item(TableName="t", Item=item)

        def both(name, **request):
            global ENABLED
            answers = []
            for enabled in (False, True):
                ENABLED = enabled
                try:
                    answers.append(getattr(client, name)(**request))
                except client.exceptions.ClientError as error:
                    answers.append(("error", error.response["Error"]))
                if isinstance(answers[-1], dict):
                    answers[-1].pop("ResponseMetadata", None)
            ENABLED = True
            if answers[0] != answers[1]:
                failures.append(f"{name} {json.dumps(request, default=str)[:300]}: responses differ")
            return answers[0]

        def paginate(**query):
            start, pages = None, 0
            while True:
                request = dict(query, **({"ExclusiveStartKey": start} if start else {}))
                page = both("query", **request)
                if isinstance(page, tuple):  # a request the check means to succeed
                    failures.append(f"query {json.dumps(query)[:300]}: {page[1]}")
                    return
                pages += 1
                start = page.get("LastEvaluatedKey")
                if not start:
                    return

        for p in range(4):
            base = dict(TableName="t", KeyConditionExpression="pk = :p",
                        ExpressionAttributeValues={":p": {"S": f"part#{p}"}})
            paginate(**base)
            paginate(**base, ConsistentRead=True, Limit=37)
            paginate(**base, ScanIndexForward=False, Limit=101)
            paginate(**base, ScanIndexForward=False)
            paginate(**base, ScanIndexForward=False, ProjectionExpression="sk, n", Limit=50)
            paginate(**base, ProjectionExpression="pk, sk, n")
            paginate(**base, ProjectionExpression="sk, t, z, absent, n, q", Limit=70)
            paginate(**base, ProjectionExpression="sk, m, l[0], ss")
            paginate(**dict(base, ExpressionAttributeNames={"#n": "n", "#s": "s"}), ProjectionExpression="#n, #s")
            paginate(TableName="t", KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
                     ExpressionAttributeValues={":p": {"S": f"part#{p}"}, ":s": {"S": "b"}})
            paginate(TableName="t", KeyConditionExpression="pk = :p AND sk > :s", Limit=50,
                     ExpressionAttributeValues={":p": {"S": f"part#{p}"}, ":s": {"S": "a5"}})
            paginate(**dict(base, ExpressionAttributeValues={":p": {"S": f"part#{p}"}, ":t": {"BOOL": True}}),
                     FilterExpression="t = :t", Limit=60)
        # Writes between reads: a sort-key order kept from an earlier read must not hide them.
        base = dict(TableName="t", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "part#0"}})
        paginate(**base, Limit=90)
        for i in range(40):
            client.put_item(TableName="t", Item={"pk": {"S": "part#0"}, "sk": {"S": f"b{i:09d}x"}, "n": {"N": str(i)}})
        first = client.query(**base, Limit=5)["Items"]
        client.delete_item(TableName="t", Key={"pk": first[0]["pk"], "sk": first[0]["sk"]})
        client.put_item(TableName="t", Item={"pk": {"S": "part#0"}, "sk": {"S": "0first"}})
        paginate(**base, Limit=90)
        paginate(**base)
        both("query", TableName="missing", KeyConditionExpression="pk = :p",
             ExpressionAttributeValues={":p": {"S": "x"}})
        items = client.scan(TableName="t", Limit=120)["Items"]
        keys = [{"pk": i["pk"], "sk": i["sk"]} for i in items]
        both("batch_get_item", RequestItems={"t": {"Keys": keys[:100], "ConsistentRead": True}})
        both("get_item", TableName="t", Key=keys[0])
        both("get_item", TableName="t", Key={"pk": {"S": "none"}, "sk": {"S": "none"}})
        both("scan", TableName="t", Limit=200)
        written = {}
        for enabled in (False, True):
            ENABLED = enabled
            table = f"written-{enabled}"
            client.create_table(
                TableName=table,
                BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                      {"AttributeName": "sk", "AttributeType": "S"}],
            )
            for batch in range(0, len(items), 25):
                client.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": i}} for i in items[batch:batch + 25]]})
            errors = []
            for size in (404_000, 406_000):
                try:
                    client.put_item(TableName=table, Item={"pk": {"S": "big"}, "sk": {"S": str(size)}, "s": {"S": "x" * size}})
                except client.exceptions.ClientError as error:
                    errors.append(error.response["Error"])
            written[enabled] = (client.scan(TableName=table, ConsistentRead=True, Limit=500)["Items"], errors)
        ENABLED = True
        if written[False] != written[True]:
            failures.append("BatchWriteItem/PutItem: the items written (or the size errors) differ")
        elif len(written[True][1]) != 1:
            failures.append(f"PutItem past 400 KB: expected one ItemSizeTooLarge, got {written[True][1]}")
        # Every item still alive is one a table holds: the copies that reads made are gone.
        from moto.dynamodb.models import dynamodb_backends

        gc.collect()
        tables = dynamodb_backends["123456789012"]["us-east-1"].tables.values()
        stored = sum(len(partition) for table in tables for partition in table.items.values())
        alive = sum(1 for o in gc.get_objects() if type(o) is dynamo_type.Item)
        if alive > stored:
            failures.append(f"{alive - stored} DynamoDB items alive beyond the {stored} the tables hold")
    if failures:
        print("bench moto self-check FAILED:", *failures, sep="\n  ", file=sys.stderr)
        sys.exit(1)
    print("bench moto self-check: every response the same with and without the fast paths")


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-check"]:
        self_check()
    else:
        from moto.server import main

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        main(sys.argv[1:])

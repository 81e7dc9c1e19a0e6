"""sebs-local's NoSQL module for functions: SeBS's `nosql` API over the DynamoDB API.

Benchmarks call `nosql.nosql.get_instance()` and then `insert`, `get`, `update`, `query`
and `delete`, as with SeBS's own module. The endpoint comes from NOSQL_STORAGE_ENDPOINT
(host:port), a logical table `name` is the table NOSQL_STORAGE_TABLE_<name> names, and
NOSQL_STORAGE_TYPE must be `scylladb` (SeBS's value) or `dynamodb`. Keys and region are
"None" unless NOSQL_STORAGE_ACCESS_KEY, NOSQL_STORAGE_SECRET_KEY and NOSQL_STORAGE_REGION
are set (for a real DynamoDB). Numbers come back as int or float, never Decimal; floats are
accepted in items. Every failure raises NoSQLError naming the table.
"""

from decimal import Decimal
from os import environ

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


class NoSQLError(RuntimeError):
    """A NoSQL call failed; the message names the table."""


def _to_dynamo(value):
    """`value` with floats as Decimals, which is what boto3 accepts for numbers."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _to_dynamo(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_dynamo(v) for v in value]
    return value


def _from_dynamo(value):
    """`value` with Decimals as int (when whole) or float."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo(v) for v in value]
    if isinstance(value, set):
        return {_from_dynamo(v) for v in value}
    return value


def _encode(item):
    return {k: _SERIALIZER.serialize(_to_dynamo(v)) for k, v in item.items()}


def _decode(item):
    return {k: _from_dynamo(_DESERIALIZER.deserialize(v)) for k, v in item.items()}


class nosql:
    instance = None

    def __init__(self):
        kind = environ.get("NOSQL_STORAGE_TYPE")
        if kind not in ("scylladb", "dynamodb"):
            raise NoSQLError(
                "failed to connect to NoSQL storage: NOSQL_STORAGE_TYPE is {!r}, expected "
                "'scylladb' or 'dynamodb' (does the benchmark's input.py declare "
                "allocate_nosql()?)".format(kind)
            )
        endpoint = environ.get("NOSQL_STORAGE_ENDPOINT")
        if not endpoint:
            raise NoSQLError(
                "failed to connect to NoSQL storage: NOSQL_STORAGE_ENDPOINT is not set"
            )
        if "://" not in endpoint:
            endpoint = "http://" + endpoint
        self._endpoint = endpoint
        self.client = boto3.client(
            "dynamodb",
            endpoint_url=endpoint,
            region_name=environ.get("NOSQL_STORAGE_REGION") or "None",
            aws_access_key_id=environ.get("NOSQL_STORAGE_ACCESS_KEY") or "None",
            aws_secret_access_key=environ.get("NOSQL_STORAGE_SECRET_KEY") or "None",
        )
        self._tables = {}

    def _get_table(self, table_name):
        if table_name not in self._tables:
            env_name = "NOSQL_STORAGE_TABLE_{}".format(table_name)
            if env_name not in environ:
                raise NoSQLError(
                    "failed to find table {}: {} is not set (is it in the benchmark's "
                    "allocate_nosql()?)".format(table_name, env_name)
                )
            self._tables[table_name] = environ[env_name]
        return self._tables[table_name]

    def _call(self, what, table_name, call, **kwargs):
        table = self._get_table(table_name)
        try:
            return call(TableName=table, **kwargs)
        except Exception as e:
            raise NoSQLError(
                "failed to {} table {} ({} at {}): {}".format(
                    what, table_name, table, self._endpoint, e
                )
            ) from e

    @staticmethod
    def _key(primary_key, secondary_key):
        return _encode({primary_key[0]: primary_key[1], secondary_key[0]: secondary_key[1]})

    def insert(self, table_name, primary_key, secondary_key, data):
        """Puts `data` with the two keys (added to `data`, as SeBS does) as one item."""
        for key in (primary_key, secondary_key):
            data[key[0]] = key[1]
        self._call("put an item into", table_name, self.client.put_item, Item=_encode(data))

    def get(self, table_name, primary_key, secondary_key):
        """The item with these keys, or None when there is none."""
        res = self._call(
            "get an item from",
            table_name,
            self.client.get_item,
            Key=self._key(primary_key, secondary_key),
        )
        item = res.get("Item")
        return None if item is None else _decode(item)

    def update(self, table_name, primary_key, secondary_key, updates):
        """Sets the attributes in `updates` on the item with these keys."""
        if not updates:
            return
        names = {}
        values = {}
        assignments = []
        # Attribute names go through placeholders: DynamoDB reserves words like 'status'.
        for i, (name, value) in enumerate(updates.items()):
            names["#a{}".format(i)] = name
            values[":v{}".format(i)] = _SERIALIZER.serialize(_to_dynamo(value))
            assignments.append("#a{0} = :v{0}".format(i))
        self._call(
            "update an item in",
            table_name,
            self.client.update_item,
            Key=self._key(primary_key, secondary_key),
            UpdateExpression="SET " + ", ".join(assignments),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def query(self, table_name, primary_key, _secondary_key_name):
        """Every item with this primary key, ascending by sort key."""
        items = []
        start = None
        while True:
            kwargs = {
                "KeyConditionExpression": "#k = :v",
                "ExpressionAttributeNames": {"#k": primary_key[0]},
                "ExpressionAttributeValues": {":v": _SERIALIZER.serialize(primary_key[1])},
            }
            if start is not None:
                kwargs["ExclusiveStartKey"] = start
            res = self._call("query", table_name, self.client.query, **kwargs)
            items.extend(_decode(item) for item in res.get("Items", []))
            start = res.get("LastEvaluatedKey")
            if not start:
                return items

    def delete(self, table_name, primary_key, secondary_key):
        """Deletes the item with these keys (none is fine)."""
        self._call(
            "delete an item from",
            table_name,
            self.client.delete_item,
            Key=self._key(primary_key, secondary_key),
        )

    @staticmethod
    def get_instance():
        if nosql.instance is None:
            nosql.instance = nosql()
        return nosql.instance

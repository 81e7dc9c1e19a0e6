"""Drives the DynamoDB server with boto3 as SeBS's wrapper and host side call it (region
and keys "None"), and prints what it observed as one JSON line.
Usage: dynamodb.py ENDPOINT TABLE create|write|read|drop."""

import json
import sys
from decimal import Decimal

import boto3
import botocore

endpoint, table, mode = sys.argv[1:4]
c = boto3.client(
    "dynamodb",
    endpoint_url="http://" + endpoint,
    region_name="None",
    aws_access_key_id="None",
    aws_secret_access_key="None",
)
out = {}


def code(call):
    try:
        call()
        return None
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]


def create():
    c.create_table(
        TableName=table,
        AttributeDefinitions=[
            {"AttributeName": "cart_id", "AttributeType": "S"},
            {"AttributeName": "product_id", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "cart_id", "KeyType": "HASH"},
            {"AttributeName": "product_id", "KeyType": "RANGE"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def key(cart, product):
    return {"cart_id": {"S": cart}, "product_id": {"S": product}}


def query(cart):
    items = c.query(
        TableName=table,
        KeyConditionExpression="cart_id = :k",
        ExpressionAttributeValues={":k": {"S": cart}},
    )["Items"]
    return [[i["product_id"]["S"], i["price"]["N"]] for i in items]


if mode == "create":
    create()
elif mode == "write":
    create()
    out["second_create"] = code(create)
    described = c.describe_table(TableName=table)["Table"]
    out["describe"] = {
        "status": described["TableStatus"],
        "keys": [[k["AttributeName"], k["KeyType"]] for k in described["KeySchema"]],
    }
    for product, price in [("p3", "3"), ("p1", "42"), ("p2", "1.5")]:
        c.put_item(
            TableName=table,
            Item={
                **key("c1", product),
                "price": {"N": price},
                "quantity": {"N": "2"},
                "name": {"S": "item " + product},
            },
        )
    c.put_item(TableName=table, Item={**key("c2", "p9"), "price": {"N": "9"}})
    out["get"] = c.get_item(TableName=table, Key=key("c1", "p1"))["Item"]
    # SeBS's update: SET with attribute name placeholders (`status` is a reserved word).
    c.update_item(
        TableName=table,
        Key=key("c1", "p1"),
        UpdateExpression="SET #status_name = :status_value, #quantity_name = :quantity_value",
        ExpressionAttributeNames={"#status_name": "status", "#quantity_name": "quantity"},
        ExpressionAttributeValues={":status_value": {"S": "paid"}, ":quantity_value": {"N": "5"}},
    )
    out["updated"] = c.get_item(TableName=table, Key=key("c1", "p1"))["Item"]
    out["query"] = query("c1")
    c.delete_item(TableName=table, Key=key("c1", "p3"))
    out["deleted"] = "Item" in c.get_item(TableName=table, Key=key("c1", "p3"))
    out["query_after_delete"] = query("c1")
    out["missing_table"] = code(lambda: c.get_item(TableName=table + "-none", Key=key("a", "b")))
    # The resource API, as SeBS's own Python wrapper uses it.
    resource = boto3.resource(
        "dynamodb",
        endpoint_url="http://" + endpoint,
        region_name="None",
        aws_access_key_id="None",
        aws_secret_access_key="None",
    )
    t = resource.Table(table)
    t.put_item(Item={"cart_id": "c3", "product_id": "x", "price": Decimal("4.25")})
    out["resource_get"] = str(t.get_item(Key={"cart_id": "c3", "product_id": "x"})["Item"]["price"])
elif mode == "read":
    out["query"] = query("c1")
    out["tables"] = c.list_tables()["TableNames"]
elif mode == "drop":
    c.delete_table(TableName=table)
    out["describe_dropped"] = code(lambda: c.describe_table(TableName=table))
print(json.dumps(out))

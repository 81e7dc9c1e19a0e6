//! The DynamoDB server against boto3 and the AWS SDK v3, as SeBS's wrappers, its host side
//! and 130.crud-api call it.

use serde_json::json;

use crate::expect_fields;
use crate::support::{self, Kind, Server, NODE_CLIENTS, PYTHON_CLIENTS};
use sebs_testkit::{trial, Trial};

/// The tests of this module, each with what it needs from the machine.
pub fn trials() -> Vec<Trial> {
    vec![
        trial!(boto3_speaks_dynamodb, PYTHON_CLIENTS),
        trial!(aws_sdk_v3_speaks_dynamodb, NODE_CLIENTS),
    ]
}
fn boto3_speaks_dynamodb() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(Kind::DynamoDb, data.path());
    let table = "sebs-benchmarks-local-test-130.crud-api-shopping_cart";
    let out = support::python(
        include_str!("clients/dynamodb.py"),
        &[&server.address, table, "write"],
        &[],
    )
    .json();
    let item = |status: Option<&str>, quantity: &str| {
        let mut item = json!({
            "cart_id": {"S": "c1"},
            "product_id": {"S": "p1"},
            "price": {"N": "42"},
            "quantity": {"N": quantity},
            "name": {"S": "item p1"},
        });
        if let Some(status) = status {
            item["status"] = json!({"S": status});
        }
        item
    };
    expect_fields(
        "boto3",
        &out,
        json!({
            "second_create": "ResourceInUseException",
            "describe": {"status": "ACTIVE", "keys": [["cart_id", "HASH"], ["product_id", "RANGE"]]},
            "get": item(None, "2"),
            "updated": item(Some("paid"), "5"),
            // Ascending by sort key, whatever the order of the puts.
            "query": [["p1", "42"], ["p2", "1.5"], ["p3", "3"]],
            "deleted": false,
            "query_after_delete": [["p1", "42"], ["p2", "1.5"]],
            "missing_table": "ResourceNotFoundException",
            "resource_get": "4.25",
        }),
    );
}

fn aws_sdk_v3_speaks_dynamodb() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(Kind::DynamoDb, data.path());
    let out = support::node(
        include_str!("clients/dynamodb.js"),
        &[&server.address, "sebs-node-table"],
        &[],
    )
    .json();
    expect_fields(
        "AWS SDK v3",
        &out,
        json!({
            "second_create": "ResourceInUseException",
            "status": "ACTIVE",
            "get": {"cart_id": "c1", "product_id": "p1", "price": 42, "quantity": 2},
            "updated": {"cart_id": "c1", "product_id": "p1", "price": 42, "quantity": 5, "status": "paid"},
            "query": [["p1", 42], ["p2", 1.5], ["p3", 3]],
            "query_after_delete": [["p1", 42], ["p2", 1.5]],
            "describe_dropped": "ResourceNotFoundException",
        }),
    );
}

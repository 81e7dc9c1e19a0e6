//! The host's DynamoDB client: the tables a benchmark allocates and the items its
//! `input.py` writes, over the DynamoDB JSON API with SigV4 (dummy keys are fine for the
//! embedded store and ScyllaDB's Alternator).

use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::sign::{Payload, SignError, Signer};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a new table may take to become ACTIVE.
const TABLE_ACTIVE_DEADLINE: Duration = Duration::from_secs(30);

/// A request to a DynamoDB endpoint that did not work.
#[derive(Debug, thiserror::Error)]
pub enum DynamoError {
    #[error("reach NoSQL storage at {endpoint} ({action})")]
    Unreachable {
        endpoint: String,
        action: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{action} at NoSQL storage {endpoint}: {status} {kind}: {message}")]
    Refused {
        endpoint: String,
        action: String,
        status: u16,
        /// DynamoDB's error type without its namespace, e.g. `ResourceInUseException`.
        kind: String,
        message: String,
    },
    #[error("{action} at NoSQL storage {endpoint}: {what}")]
    Protocol {
        endpoint: String,
        action: String,
        what: String,
    },
    #[error(transparent)]
    Sign(#[from] SignError),
}

impl DynamoError {
    pub fn kind(&self) -> Option<&str> {
        match self {
            DynamoError::Refused { kind, .. } => Some(kind),
            _ => None,
        }
    }
}

/// A client of one DynamoDB API endpoint.
#[derive(Debug, Clone)]
pub struct DynamoClient {
    http: reqwest::Client,
    endpoint: String,
    signer: Signer,
}

/// A JSON value as a DynamoDB `AttributeValue` (numbers as `N`, objects as `M`, ...), the
/// way boto3's resource API writes Python values.
pub fn attribute_value(value: &Value) -> Value {
    match value {
        Value::Null => json!({"NULL": true}),
        Value::Bool(b) => json!({"BOOL": b}),
        Value::Number(n) => json!({"N": n.to_string()}),
        Value::String(s) => json!({"S": s}),
        Value::Array(items) => json!({"L": items.iter().map(attribute_value).collect::<Vec<_>>()}),
        Value::Object(map) => json!({"M": attributes(map)}),
    }
}

/// An item: each attribute as an `AttributeValue`.
pub fn attributes(item: &Map<String, Value>) -> Map<String, Value> {
    item.iter()
        .map(|(k, v)| (k.clone(), attribute_value(v)))
        .collect()
}

impl DynamoClient {
    /// A client of `endpoint` (`host:port`) with these keys and region (SeBS: "None").
    pub fn new(endpoint: &str, access_key: &str, secret_key: &str, region: &str) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .no_proxy()
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        DynamoClient {
            http,
            endpoint: endpoint.to_string(),
            signer: Signer::new(access_key, secret_key, region, "dynamodb"),
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn call(&self, operation: &str, action: &str, body: Value) -> Result<Value, DynamoError> {
        let bytes = body.to_string().into_bytes();
        let url = format!("http://{}/", self.endpoint);
        let mut request = http::Request::builder()
            .method("POST")
            .uri(&url)
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-target", format!("DynamoDB_20120810.{operation}"))
            .body(reqwest::Body::from(bytes.clone()))
            .map_err(|e| DynamoError::Protocol {
                endpoint: self.endpoint.clone(),
                action: action.to_string(),
                what: format!("malformed request: {e}"),
            })?;
        self.signer.sign(&mut request, Payload::Bytes(&bytes))?;
        let unreachable = |source| DynamoError::Unreachable {
            endpoint: self.endpoint.clone(),
            action: action.to_string(),
            source,
        };
        let request = reqwest::Request::try_from(request).map_err(unreachable)?;
        let response = self.http.execute(request).await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(unreachable)?;
        let answer: Value = serde_json::from_str(&text).map_err(|_| DynamoError::Protocol {
            endpoint: self.endpoint.clone(),
            action: action.to_string(),
            what: format!(
                "HTTP {status} with a body that is not JSON: {}",
                text.chars().take(200).collect::<String>()
            ),
        })?;
        if (200..300).contains(&status) {
            return Ok(answer);
        }
        let kind = answer
            .get("__type")
            .and_then(Value::as_str)
            .map(|t| t.rsplit('#').next().unwrap_or(t).to_string())
            .unwrap_or_else(|| format!("HTTP{status}"));
        let message = answer
            .get("message")
            .or_else(|| answer.get("Message"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Err(DynamoError::Refused {
            endpoint: self.endpoint.clone(),
            action: action.to_string(),
            status,
            kind,
            message,
        })
    }

    /// The names of every table.
    pub async fn list_tables(&self) -> Result<Vec<String>, DynamoError> {
        let mut names = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let mut body = json!({});
            if let Some(s) = &start {
                body["ExclusiveStartTableName"] = json!(s);
            }
            let page = self.call("ListTables", "list tables", body).await?;
            names.extend(
                page.get("TableNames")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_string),
            );
            match page.get("LastEvaluatedTableName").and_then(Value::as_str) {
                Some(last) => start = Some(last.to_string()),
                None => return Ok(names),
            }
        }
    }

    /// Makes `table` with string HASH key `pk` and RANGE key `sk`, unless it exists, and
    /// waits until it is ACTIVE.
    pub async fn ensure_table(&self, table: &str, pk: &str, sk: &str) -> Result<(), DynamoError> {
        let action = format!("create table {table}");
        let body = json!({
            "TableName": table,
            "AttributeDefinitions": [
                {"AttributeName": pk, "AttributeType": "S"},
                {"AttributeName": sk, "AttributeType": "S"},
            ],
            "KeySchema": [
                {"AttributeName": pk, "KeyType": "HASH"},
                {"AttributeName": sk, "KeyType": "RANGE"},
            ],
            "BillingMode": "PAY_PER_REQUEST",
        });
        match self.call("CreateTable", &action, body).await {
            Ok(_) => {}
            Err(e) if e.kind() == Some("ResourceInUseException") => {}
            Err(e) => return Err(e),
        }
        let begin = std::time::Instant::now();
        loop {
            let described = self
                .call(
                    "DescribeTable",
                    &format!("describe table {table}"),
                    json!({"TableName": table}),
                )
                .await?;
            let status = described
                .pointer("/Table/TableStatus")
                .and_then(Value::as_str)
                .unwrap_or("ACTIVE");
            if status == "ACTIVE" {
                return Ok(());
            }
            if begin.elapsed() > TABLE_ACTIVE_DEADLINE {
                return Err(DynamoError::Protocol {
                    endpoint: self.endpoint.clone(),
                    action,
                    what: format!("still {status} after {TABLE_ACTIVE_DEADLINE:?}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Writes one item (keys included) into `table`.
    pub async fn put_item(
        &self,
        table: &str,
        item: &Map<String, Value>,
    ) -> Result<(), DynamoError> {
        self.call(
            "PutItem",
            &format!("put an item into {table}"),
            json!({"TableName": table, "Item": attributes(item)}),
        )
        .await
        .map(|_| ())
    }

    /// Removes `table`; one that does not exist counts as removed.
    pub async fn delete_table(&self, table: &str) -> Result<(), DynamoError> {
        match self
            .call(
                "DeleteTable",
                &format!("delete table {table}"),
                json!({"TableName": table}),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == Some("ResourceNotFoundException") => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_become_attribute_values() {
        let check = |value: Value, expect: Value| assert_eq!(attribute_value(&value), expect);
        check(json!("x"), json!({"S": "x"}));
        check(json!(42), json!({"N": "42"}));
        check(json!(0.5), json!({"N": "0.5"}));
        check(json!(true), json!({"BOOL": true}));
        check(json!(null), json!({"NULL": true}));
        check(json!([1, "a"]), json!({"L": [{"N": "1"}, {"S": "a"}]}));
        check(
            json!({"a": {"b": 1}}),
            json!({"M": {"a": {"M": {"b": {"N": "1"}}}}}),
        );
    }
}

//! An agent's invocation log (`GET /invocations`): when each call's handler ran, which
//! `stop` puts beside a container's memory profile; and its memory series (`GET /memory`),
//! what the agent sampled of its own cgroup where this host cannot read it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use sebs_wire::{InvocationLog, INVOCATIONS_PATH, MEMORY_PATH};

use crate::client::{Connection, Request};
use crate::http::{Trigger, TriggerConfig, UrlError};

/// Why an agent's invocation log or memory series could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error("connect to function at {url}")]
    Connect {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("exchange HTTP with function at {url}")]
    Http {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("read the {what} of function at {url} within {}s", timeout.as_secs_f64())]
    Timeout {
        what: &'static str,
        url: String,
        timeout: Duration,
    },
    /// An agent from before the log (or not sampling), or something else at that address.
    #[error("read the {what} of function at {url}: HTTP {status}")]
    Status {
        what: &'static str,
        url: String,
        status: u16,
    },
    /// Another container answered: the function's is gone and its address reused, so the
    /// log is someone else's.
    #[error(
        "read the {what} of function at {url}: instance {} answered, not {expected}; \
         the function's container is gone",
        found.as_deref().unwrap_or("(unnamed)")
    )]
    WrongInstance {
        what: &'static str,
        url: String,
        expected: String,
        found: Option<String>,
    },
    #[error("read the invocation log of function at {url}")]
    Parse {
        url: String,
        #[source]
        source: serde_json::Error,
    },
}

/// The invocations the agent of container `container` (its id), at `url` (as a
/// [`Trigger`] takes it), has served. Only that container's agent is believed: an address
/// may have passed to another container since.
pub async fn invocation_log(
    url: &str,
    container: &str,
    timeout: Duration,
) -> Result<InvocationLog, LogError> {
    let (url, body) =
        agent_get(url, container, INVOCATIONS_PATH, "invocation log", timeout).await?;
    serde_json::from_slice(&body).map_err(|source| LogError::Parse { url, source })
}

/// The memory series the agent of container `container` (its id), at `url`, sampled of
/// its own cgroup since it was last asked: sebs-memory's journal lines, as text. Only that
/// container's agent is believed.
pub async fn memory_series(
    url: &str,
    container: &str,
    timeout: Duration,
) -> Result<Bytes, LogError> {
    let (_, body) = agent_get(url, container, MEMORY_PATH, "memory series", timeout).await?;
    Ok(body)
}

/// `GET path` of the agent of `container` at `url`: the address as written in errors,
/// and the body of a 200 from that container's agent.
async fn agent_get(
    url: &str,
    container: &str,
    path: &'static str,
    what: &'static str,
    timeout: Duration,
) -> Result<(String, Bytes), LogError> {
    // Docker names a container's host after the first 12 digits of its id.
    let expected: String = container.chars().take(12).collect();
    let trigger = Trigger::new(url, TriggerConfig::default())?;
    let url = format!("{}:{}", trigger.host, trigger.port);
    let exchange = async {
        let stream = tokio::net::TcpStream::connect((trigger.host.as_str(), trigger.port))
            .await
            .map_err(|source| LogError::Connect {
                url: url.clone(),
                source,
            })?;
        let answer = Connection::new(stream)
            .exchange(
                &Request {
                    method: "GET",
                    path,
                    host: &url,
                    headers: "",
                    close: true,
                    body: &[],
                },
                Instant::now(),
            )
            .await
            .map_err(|e| LogError::Http {
                url: url.clone(),
                source: e.into_io(),
            })?;
        Ok::<_, LogError>((answer.status, answer.instance, Bytes::from(answer.body)))
    };
    let (status, instance, body) =
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| LogError::Timeout {
                what,
                url: url.clone(),
                timeout,
            })??;
    if instance.as_deref() != Some(expected.as_str()) {
        return Err(LogError::WrongInstance {
            what,
            url,
            expected,
            found: instance,
        });
    }
    if status != 200 {
        return Err(LogError::Status { what, url, status });
    }
    Ok((url, body))
}

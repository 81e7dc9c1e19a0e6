//! The host's S3 client: what input generation and validation need of object storage
//! (buckets, listing a prefix, uploading and downloading files), over reqwest with SigV4.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use crate::sign::{uri_encode, Payload, SignError, Signer, DEFAULT_REGION};

/// How long one request may take to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A request to an S3 endpoint that did not work.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("reach object storage at {endpoint} ({action})")]
    Unreachable {
        endpoint: String,
        action: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{action} at object storage {endpoint}: {status} {code}: {message}")]
    Refused {
        endpoint: String,
        action: String,
        status: u16,
        /// S3's error code, e.g. `NoSuchKey`, `SignatureDoesNotMatch`.
        code: String,
        message: String,
    },
    #[error("{action} at object storage {endpoint}: the answer is not S3's: {what}")]
    Protocol {
        endpoint: String,
        action: String,
        what: String,
    },
    #[error("{action}: {path}")]
    File {
        action: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Sign(#[from] SignError),
}

impl S3Error {
    /// The S3 error code of a refused request.
    pub fn code(&self) -> Option<&str> {
        match self {
            S3Error::Refused { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether the endpoint refused our keys (the user's configuration is wrong).
    pub fn is_auth(&self) -> bool {
        matches!(
            self.code(),
            Some("SignatureDoesNotMatch" | "InvalidAccessKeyId" | "AccessDenied")
        )
    }
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    /// Without quotes: the MD5 (hex) of a simply uploaded object's bytes.
    pub etag: String,
    pub size: u64,
}

/// A client of one S3 endpoint (path-style requests over plain HTTP).
#[derive(Debug, Clone)]
pub struct S3Client {
    http: reqwest::Client,
    /// `host:port`, as SeBS writes `address`.
    endpoint: String,
    signer: Signer,
}

#[derive(Deserialize)]
struct ErrorXml {
    #[serde(rename = "Code", default)]
    code: String,
    #[serde(rename = "Message", default)]
    message: String,
}

#[derive(Deserialize)]
struct ListAllMyBucketsResult {
    #[serde(rename = "Buckets", default)]
    buckets: BucketsXml,
}

#[derive(Deserialize, Default)]
struct BucketsXml {
    #[serde(rename = "Bucket", default)]
    bucket: Vec<BucketXml>,
}

#[derive(Deserialize)]
struct BucketXml {
    #[serde(rename = "Name")]
    name: String,
}

#[derive(Deserialize)]
struct ListBucketResult {
    #[serde(rename = "Contents", default)]
    contents: Vec<ContentsXml>,
    #[serde(rename = "IsTruncated", default)]
    is_truncated: bool,
    #[serde(rename = "NextContinuationToken", default)]
    next_continuation_token: Option<String>,
}

#[derive(Deserialize)]
struct ContentsXml {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "ETag", default)]
    etag: String,
    #[serde(rename = "Size", default)]
    size: u64,
}

impl S3Client {
    /// A client of `endpoint` (`host:port`) with these keys.
    pub fn new(endpoint: &str, access_key: &str, secret_key: &str) -> S3Client {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            // Plain HTTP to one endpoint: no proxy from the environment may sit in between.
            .no_proxy()
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        S3Client {
            http,
            endpoint: endpoint.to_string(),
            signer: Signer::new(access_key, secret_key, DEFAULT_REGION, "s3"),
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn url(&self, bucket: &str, key: Option<&str>, query: &[(&str, &str)]) -> String {
        let mut url = format!("http://{}/{}", self.endpoint, uri_encode(bucket, false));
        if let Some(key) = key {
            url.push('/');
            url.push_str(&uri_encode(key, true));
        }
        if !query.is_empty() {
            let mut pairs: Vec<String> = query
                .iter()
                .map(|(k, v)| format!("{}={}", uri_encode(k, false), uri_encode(v, false)))
                .collect();
            pairs.sort();
            url.push('?');
            url.push_str(&pairs.join("&"));
        }
        url
    }

    /// A signed GET without a body.
    async fn get(&self, action: &str, url: String) -> Result<reqwest::Response, S3Error> {
        self.send(
            action,
            reqwest::Method::GET,
            url,
            reqwest::Body::from(""),
            Payload::Bytes(b""),
            &[],
        )
        .await
    }

    /// Sends a signed request; an answer other than 2xx becomes [`S3Error::Refused`].
    async fn send(
        &self,
        action: &str,
        method: reqwest::Method,
        url: String,
        body: reqwest::Body,
        payload: Payload<'_>,
        headers: &[(&str, String)],
    ) -> Result<reqwest::Response, S3Error> {
        let mut builder = http::Request::builder().method(method).uri(&url);
        for (k, v) in headers {
            builder = builder.header(*k, v);
        }
        let mut request = builder.body(body).map_err(|e| S3Error::Protocol {
            endpoint: self.endpoint.clone(),
            action: action.to_string(),
            what: format!("malformed request {url}: {e}"),
        })?;
        self.signer.sign(&mut request, payload)?;
        let request =
            reqwest::Request::try_from(request).map_err(|source| S3Error::Unreachable {
                endpoint: self.endpoint.clone(),
                action: action.to_string(),
                source,
            })?;
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|source| S3Error::Unreachable {
                endpoint: self.endpoint.clone(),
                action: action.to_string(),
                source,
            })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let (code, message) = match quick_xml::de::from_str::<ErrorXml>(&text) {
            Ok(e) => (e.code, e.message),
            // A HEAD answer has no body; its status says it all.
            Err(_) => (
                match status {
                    404 => "NotFound".to_string(),
                    403 => "AccessDenied".to_string(),
                    _ => format!("HTTP{status}"),
                },
                text.chars().take(200).collect(),
            ),
        };
        Err(S3Error::Refused {
            endpoint: self.endpoint.clone(),
            action: action.to_string(),
            status,
            code,
            message,
        })
    }

    fn parse<T: serde::de::DeserializeOwned>(
        &self,
        action: &str,
        text: &str,
    ) -> Result<T, S3Error> {
        quick_xml::de::from_str(text).map_err(|e| S3Error::Protocol {
            endpoint: self.endpoint.clone(),
            action: action.to_string(),
            what: e.to_string(),
        })
    }

    async fn text(&self, action: &str, response: reqwest::Response) -> Result<String, S3Error> {
        response
            .text()
            .await
            .map_err(|source| S3Error::Unreachable {
                endpoint: self.endpoint.clone(),
                action: action.to_string(),
                source,
            })
    }

    /// The names of every bucket the keys can see.
    pub async fn list_buckets(&self) -> Result<Vec<String>, S3Error> {
        let action = "list buckets";
        let url = format!("http://{}/", self.endpoint);
        let response = self.get(action, url).await?;
        let text = self.text(action, response).await?;
        let parsed: ListAllMyBucketsResult = self.parse(action, &text)?;
        Ok(parsed.buckets.bucket.into_iter().map(|b| b.name).collect())
    }

    /// Makes `bucket`; one that exists and is ours already counts as made.
    pub async fn create_bucket(&self, bucket: &str) -> Result<(), S3Error> {
        let action = format!("create bucket {bucket}");
        let url = self.url(bucket, None, &[]);
        match self
            .send(
                &action,
                reqwest::Method::PUT,
                url,
                reqwest::Body::from(""),
                Payload::Bytes(b""),
                &[],
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.code(), Some("BucketAlreadyOwnedByYou")) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Every object under `prefix` in `bucket`, in key order.
    pub async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<ObjectInfo>, S3Error> {
        let action = format!("list {bucket}/{prefix}");
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![("list-type", "2"), ("prefix", prefix)];
            if let Some(t) = &token {
                query.push(("continuation-token", t.as_str()));
            }
            let url = self.url(bucket, None, &query);
            let response = self.get(&action, url).await?;
            let text = self.text(&action, response).await?;
            let page: ListBucketResult = self.parse(&action, &text)?;
            out.extend(page.contents.into_iter().map(|c| ObjectInfo {
                key: c.key,
                etag: c.etag.trim_matches('"').to_string(),
                size: c.size,
            }));
            match (page.is_truncated, page.next_continuation_token) {
                (true, Some(next)) => token = Some(next),
                _ => return Ok(out),
            }
        }
    }

    /// Uploads the file at `path` as `bucket/key` in one streamed PUT (S3's simple uploads
    /// go to 5 GiB, and their ETag is the bytes' MD5, which [`S3Client::list_objects`]
    /// compares against).
    pub async fn put_file(&self, bucket: &str, key: &str, path: &Path) -> Result<u64, S3Error> {
        let action = format!("upload {} to {bucket}/{key}", path.display());
        let file_err = |source| S3Error::File {
            action: format!("upload to {bucket}/{key}"),
            path: path.to_path_buf(),
            source,
        };
        let file = tokio::fs::File::open(path).await.map_err(file_err)?;
        let size = file.metadata().await.map_err(file_err)?.len();
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
            file,
            256 * 1024,
        ));
        let url = self.url(bucket, Some(key), &[]);
        self.send(
            &action,
            reqwest::Method::PUT,
            url,
            body,
            Payload::Unsigned,
            &[("content-length", size.to_string())],
        )
        .await?;
        Ok(size)
    }

    /// Downloads `bucket/key` into the file at `path` (its folder made as needed), streaming.
    pub async fn get_file(&self, bucket: &str, key: &str, path: &Path) -> Result<u64, S3Error> {
        let action = format!("download {bucket}/{key}");
        let file_err = |source| S3Error::File {
            action: format!("download {bucket}/{key} to"),
            path: path.to_path_buf(),
            source,
        };
        let url = self.url(bucket, Some(key), &[]);
        let response = self.get(&action, url).await?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await.map_err(file_err)?;
        }
        let mut file = tokio::fs::File::create(path).await.map_err(file_err)?;
        let mut stream = response.bytes_stream();
        let mut written = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|source| S3Error::Unreachable {
                endpoint: self.endpoint.clone(),
                action: action.clone(),
                source,
            })?;
            file.write_all(&chunk).await.map_err(file_err)?;
            written += chunk.len() as u64;
        }
        file.flush().await.map_err(file_err)?;
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_path_style_and_encoded() {
        let c = S3Client::new("127.0.0.1:9000", "a", "b");
        assert_eq!(
            c.url("bkt", Some("in/a b.jpg"), &[]),
            "http://127.0.0.1:9000/bkt/in/a%20b.jpg"
        );
        assert_eq!(
            c.url("bkt", None, &[("prefix", "in/x"), ("list-type", "2")]),
            "http://127.0.0.1:9000/bkt?list-type=2&prefix=in%2Fx"
        );
    }

    #[test]
    fn listings_parse() {
        let c = S3Client::new("e:1", "a", "b");
        let page: ListBucketResult = c
            .parse(
                "list",
                r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>p</Prefix>
<KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated>
<Contents><Key>p/a</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>&quot;abc&quot;</ETag><Size>3</Size><StorageClass>STANDARD</StorageClass></Contents>
<Contents><Key>p/b c</Key><ETag>"def"</ETag><Size>0</Size></Contents>
<NextContinuationToken>tok</NextContinuationToken></ListBucketResult>"#,
            )
            .unwrap();
        assert!(page.is_truncated);
        assert_eq!(page.next_continuation_token.as_deref(), Some("tok"));
        assert_eq!(page.contents.len(), 2);
        assert_eq!(page.contents[0].etag, "\"abc\"");
        assert_eq!(page.contents[1].key, "p/b c");
        let buckets: ListAllMyBucketsResult = c
            .parse(
                "list",
                "<ListAllMyBucketsResult><Owner><ID>x</ID></Owner><Buckets><Bucket><Name>one</Name>\
                 <CreationDate>2026-01-01T00:00:00Z</CreationDate></Bucket><Bucket><Name>two</Name>\
                 </Bucket></Buckets></ListAllMyBucketsResult>",
            )
            .unwrap();
        let names: Vec<String> = buckets.buckets.bucket.into_iter().map(|b| b.name).collect();
        assert_eq!(names, ["one", "two"]);
        let empty: ListAllMyBucketsResult = c
            .parse(
                "list",
                "<ListAllMyBucketsResult><Buckets></Buckets></ListAllMyBucketsResult>",
            )
            .unwrap();
        assert!(empty.buckets.bucket.is_empty());
    }
}

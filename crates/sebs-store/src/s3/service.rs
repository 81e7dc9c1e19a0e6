//! The S3 operations, as s3s hands them over: a thin adapter from s3s's request and answer
//! types to the [`Store`] and back, and from [`StoreError`] to S3's error codes.

use std::io::{Seek, SeekFrom};
use std::sync::Arc;

use bytes::Bytes;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, S3};
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;

use super::list::Page;
use super::multipart::{CompletionError, NamedPart};
use super::names::{url_encode, KeyError};
use super::store::{self, Attributes, Body, Store, StoreError};

/// GETs stream object files in pieces of this size.
const READ_CHUNK: usize = 256 * 1024;

/// S3's page size when a listing does not ask for less.
const MAX_KEYS: i32 = 1000;

/// The owner every bucket and object has: the store has one user.
const OWNER: &str = "sebs-store";

/// The S3 operations over one [`Store`].
pub struct Backend {
    store: Arc<Store>,
}

impl Backend {
    pub fn new(store: Arc<Store>) -> Backend {
        Backend { store }
    }
}

fn owner() -> Owner {
    Owner {
        display_name: Some(OWNER.into()),
        id: Some(OWNER.into()),
    }
}

fn timestamp(ms: i64) -> Timestamp {
    Timestamp::from(store::time_of(ms))
}

/// The S3 error for a store error: S3's code of the same meaning, and a message that reads
/// "failed to ..." with the whole chain, naming the bucket and key.
fn s3_error(e: StoreError) -> S3Error {
    use StoreError as E;
    let code = match &e {
        E::NoSuchBucket { .. } => S3ErrorCode::NoSuchBucket,
        E::BucketExists { .. } => S3ErrorCode::BucketAlreadyOwnedByYou,
        E::BucketNotEmpty { .. } => S3ErrorCode::BucketNotEmpty,
        E::NoSuchKey { .. } => S3ErrorCode::NoSuchKey,
        E::NoSuchUpload { .. } => S3ErrorCode::NoSuchUpload,
        E::InvalidKey {
            source: KeyError::TooLong { .. },
            ..
        } => S3ErrorCode::KeyTooLongError,
        E::InvalidKey { .. } => S3ErrorCode::InvalidArgument,
        E::Completion { source, .. } => match source {
            CompletionError::NoParts => S3ErrorCode::MalformedXML,
            CompletionError::OutOfOrder { .. } => S3ErrorCode::InvalidPartOrder,
            CompletionError::Missing { .. } | CompletionError::WrongEtag { .. } => {
                S3ErrorCode::InvalidPart
            }
            CompletionError::TooSmall { .. } => S3ErrorCode::EntityTooSmall,
        },
        E::IncompleteBody { .. } => S3ErrorCode::IncompleteBody,
        E::BadDigest { .. } => S3ErrorCode::BadDigest,
        E::InvalidDigest { .. } => S3ErrorCode::InvalidDigest,
        // MinIO's code for a full disk; 507 is not retried by clients, as retrying cannot
        // help.
        E::Full { .. } => S3ErrorCode::Custom("XMinioStorageFull".into()),
        E::Body { .. } => S3ErrorCode::IncompleteBody,
        E::Io { .. } | E::Db { .. } | E::Open { .. } | E::Task(_) => S3ErrorCode::InternalError,
    };
    // A body that s3s refused (a bad chunk signature, a payload hash that does not match)
    // already carries its S3 error.
    let e = match e {
        E::Body {
            source,
            bucket,
            key,
        } => match source.downcast::<S3Error>() {
            Ok(refused) => return *refused,
            Err(source) => E::Body {
                source,
                bucket,
                key,
            },
        },
        other => other,
    };
    let message = format!("failed to {}", crate::error_chain(&e));
    let mut err = S3Error::with_message(code, message);
    match &e {
        E::Full { .. } => {
            tracing::error!("{}", err.message().unwrap_or_default());
            err.set_status_code(hyper::StatusCode::INSUFFICIENT_STORAGE);
        }
        E::Io { .. } | E::Db { .. } | E::Open { .. } | E::Task(_) => {
            tracing::error!("{}", err.message().unwrap_or_default());
        }
        _ => {}
    }
    err
}

/// A request body as the store reads it (an absent body is an empty one).
fn body_of(
    blob: Option<StreamingBlob>,
    length: Option<i64>,
    content_md5: Option<String>,
) -> Body<StreamingBlob> {
    let stream = blob.unwrap_or_else(|| {
        StreamingBlob::wrap(futures_util::stream::empty::<Result<Bytes, std::io::Error>>())
    });
    Body {
        stream,
        length: length.and_then(|l| u64::try_from(l).ok()),
        content_md5,
    }
}

fn max_keys(requested: Option<i32>) -> usize {
    requested.unwrap_or(MAX_KEYS).clamp(0, MAX_KEYS) as usize
}

fn wants_url_encoding(encoding: Option<&EncodingType>) -> bool {
    encoding.is_some_and(|e| e.as_str() == EncodingType::URL)
}

/// A listing page's objects and common prefixes as S3 shows them; names URL-encoded when
/// the client asked for it.
fn page_contents(page: Page, url: bool, with_owner: bool) -> (Vec<Object>, Vec<CommonPrefix>) {
    let name = |n: String| if url { url_encode(&n) } else { n };
    let objects = page
        .objects
        .into_iter()
        .map(|o| Object {
            key: Some(name(o.key)),
            size: Some(o.size as i64),
            e_tag: Some(ETag::Strong(o.etag)),
            last_modified: Some(timestamp(o.modified_ms)),
            storage_class: Some(ObjectStorageClass::from_static(
                ObjectStorageClass::STANDARD,
            )),
            owner: with_owner.then(owner),
            ..Default::default()
        })
        .collect();
    let prefixes = page
        .common_prefixes
        .into_iter()
        .map(|p| CommonPrefix {
            prefix: Some(name(p)),
        })
        .collect();
    (objects, prefixes)
}

/// A v2 continuation token: the name to resume after, hex-encoded so that it is opaque
/// and survives any client's query-string handling.
fn continuation_token(after: &str) -> String {
    hex::encode(after)
}

fn resume_after(token: &str) -> S3Result<String> {
    hex::decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            S3Error::with_message(
                S3ErrorCode::InvalidArgument,
                format!("failed to read continuation token {token:?}: this store did not make it"),
            )
        })
}

#[async_trait::async_trait]
impl S3 for Backend {
    async fn list_buckets(
        &self,
        _req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let buckets = self.store.list_buckets().await.map_err(s3_error)?;
        let buckets = buckets
            .into_iter()
            .map(|b| Bucket {
                name: Some(b.name),
                creation_date: Some(timestamp(b.created_ms)),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(owner()),
            ..Default::default()
        }))
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let bucket = req.input.bucket;
        self.store.create_bucket(&bucket).await.map_err(s3_error)?;
        tracing::info!("created bucket {bucket}");
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{bucket}")),
        }))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.store
            .head_bucket(&req.input.bucket)
            .await
            .map_err(s3_error)?;
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.store
            .head_bucket(&req.input.bucket)
            .await
            .map_err(s3_error)?;
        // No constraint: the default region, us-east-1, as MinIO answers by default.
        Ok(S3Response::new(GetBucketLocationOutput::default()))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let bucket = req.input.bucket;
        self.store.delete_bucket(&bucket).await.map_err(s3_error)?;
        tracing::info!("deleted bucket {bucket}");
        Ok(S3Response::new(DeleteBucketOutput::default()))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let input = req.input;
        let body = body_of(input.body, input.content_length, input.content_md5);
        let attributes = Attributes {
            content_type: input.content_type,
            metadata: input.metadata.unwrap_or_default(),
        };
        let meta = self
            .store
            .put(&input.bucket, &input.key, body, attributes)
            .await
            .map_err(s3_error)?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(ETag::Strong(meta.etag)),
            size: Some(meta.size as i64),
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        let opened = self
            .store
            .open_object(&input.bucket, &input.key)
            .await
            .map_err(s3_error)?;
        let meta = opened.meta;
        let (start, length, content_range) = match &input.range {
            None => (0, meta.size, None),
            Some(range) => {
                let r = range.check(meta.size)?;
                let range_header = format!("bytes {}-{}/{}", r.start, r.end - 1, meta.size);
                (r.start, r.end - r.start, Some(range_header))
            }
        };
        let mut file = opened.file;
        if start > 0 {
            // A seek moves an offset and reads nothing: no need for a blocking thread.
            file.seek(SeekFrom::Start(start)).map_err(|source| {
                s3_error(StoreError::Io {
                    op: "read",
                    bucket: input.bucket.clone(),
                    key: input.key.clone(),
                    path: opened.path,
                    source,
                })
            })?;
        }
        let file = tokio::fs::File::from_std(file);
        let stream = ReaderStream::with_capacity(file.take(length), READ_CHUNK);
        Ok(S3Response::new(GetObjectOutput {
            body: Some(StreamingBlob::wrap(stream)),
            content_length: Some(length as i64),
            content_range,
            accept_ranges: Some("bytes".into()),
            e_tag: Some(ETag::Strong(meta.etag)),
            last_modified: Some(timestamp(meta.modified_ms)),
            content_type: meta.content_type,
            metadata: (!meta.metadata.is_empty()).then_some(meta.metadata),
            ..Default::default()
        }))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let input = req.input;
        let meta = self
            .store
            .head(&input.bucket, &input.key)
            .await
            .map_err(s3_error)?;
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some(meta.size as i64),
            accept_ranges: Some("bytes".into()),
            e_tag: Some(ETag::Strong(meta.etag)),
            last_modified: Some(timestamp(meta.modified_ms)),
            content_type: meta.content_type,
            metadata: (!meta.metadata.is_empty()).then_some(meta.metadata),
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.store
            .delete(&req.input.bucket, &req.input.key)
            .await
            .map_err(s3_error)?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        self.store
            .head_bucket(&input.bucket)
            .await
            .map_err(s3_error)?;
        let quiet = input.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for object in input.delete.objects {
            match self.store.delete(&input.bucket, &object.key).await {
                Ok(()) => {
                    if !quiet {
                        deleted.push(DeletedObject {
                            key: Some(object.key),
                            ..Default::default()
                        });
                    }
                }
                Err(e) => {
                    let e = s3_error(e);
                    errors.push(Error {
                        code: Some(e.code().as_str().to_string()),
                        key: Some(object.key),
                        message: e.message().map(str::to_string),
                        ..Default::default()
                    });
                }
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let input = req.input;
        let prefix = input.prefix.unwrap_or_default();
        let page = self
            .store
            .list(
                &input.bucket,
                &prefix,
                input.delimiter.as_deref(),
                input.marker.as_deref(),
                max_keys(input.max_keys),
            )
            .await
            .map_err(s3_error)?;
        let url = wants_url_encoding(input.encoding_type.as_ref());
        let name = |n: String| if url { url_encode(&n) } else { n };
        let next_marker = page.next_after.clone().map(name);
        let (contents, common_prefixes) = page_contents(page, url, true);
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(name(prefix)),
            marker: Some(input.marker.map(name).unwrap_or_default()),
            max_keys: Some(input.max_keys.unwrap_or(MAX_KEYS)),
            is_truncated: Some(next_marker.is_some()),
            next_marker,
            contents: Some(contents),
            common_prefixes: (!common_prefixes.is_empty()).then_some(common_prefixes),
            delimiter: input.delimiter.map(name),
            encoding_type: url.then(|| EncodingType::from_static(EncodingType::URL)),
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let prefix = input.prefix.unwrap_or_default();
        // A continuation token wins over start-after, as in S3.
        let after = match &input.continuation_token {
            Some(token) => Some(resume_after(token)?),
            None => input.start_after.clone(),
        };
        let page = self
            .store
            .list(
                &input.bucket,
                &prefix,
                input.delimiter.as_deref(),
                after.as_deref(),
                max_keys(input.max_keys),
            )
            .await
            .map_err(s3_error)?;
        let url = wants_url_encoding(input.encoding_type.as_ref());
        let name = |n: String| if url { url_encode(&n) } else { n };
        let next = page.next_after.as_deref().map(continuation_token);
        let (contents, common_prefixes) =
            page_contents(page, url, input.fetch_owner.unwrap_or(false));
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(name(prefix)),
            max_keys: Some(input.max_keys.unwrap_or(MAX_KEYS)),
            key_count: Some((contents.len() + common_prefixes.len()) as i32),
            continuation_token: input.continuation_token,
            is_truncated: Some(next.is_some()),
            next_continuation_token: next,
            contents: Some(contents),
            common_prefixes: (!common_prefixes.is_empty()).then_some(common_prefixes),
            delimiter: input.delimiter.map(name),
            encoding_type: url.then(|| EncodingType::from_static(EncodingType::URL)),
            start_after: input.start_after.map(name),
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let input = req.input;
        let attributes = Attributes {
            content_type: input.content_type,
            metadata: input.metadata.unwrap_or_default(),
        };
        let upload_id = self
            .store
            .create_upload(&input.bucket, &input.key, attributes)
            .await
            .map_err(s3_error)?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let input = req.input;
        let body = body_of(input.body, input.content_length, input.content_md5);
        let etag = self
            .store
            .upload_part(
                &input.bucket,
                &input.key,
                &input.upload_id,
                input.part_number,
                body,
            )
            .await
            .map_err(s3_error)?;
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(etag)),
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let host = req
            .headers
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost")
            .to_string();
        let input = req.input;
        let named = input
            .multipart_upload
            .and_then(|u| u.parts)
            .unwrap_or_default()
            .into_iter()
            .map(|p| match (p.part_number, p.e_tag) {
                (Some(number), Some(etag)) => Ok(NamedPart {
                    number,
                    etag: etag.value().to_string(),
                }),
                _ => Err(S3Error::with_message(
                    S3ErrorCode::MalformedXML,
                    format!(
                        "failed to complete the upload of {} in bucket {}: a part without PartNumber or ETag",
                        input.key, input.bucket
                    ),
                )),
            })
            .collect::<S3Result<Vec<_>>>()?;
        let meta = self
            .store
            .complete(&input.bucket, &input.key, &input.upload_id, &named)
            .await
            .map_err(s3_error)?;
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            location: Some(format!(
                "http://{host}/{}/{}",
                input.bucket,
                url_encode(&input.key)
            )),
            bucket: Some(input.bucket),
            key: Some(input.key),
            e_tag: Some(ETag::Strong(meta.etag)),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let input = req.input;
        self.store
            .abort(&input.bucket, &input.key, &input.upload_id)
            .await
            .map_err(s3_error)?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        let prefix = input.prefix.unwrap_or_default();
        let max = input.max_uploads.unwrap_or(MAX_KEYS).clamp(0, MAX_KEYS);
        let (uploads, truncated) = self
            .store
            .list_uploads(
                &input.bucket,
                &prefix,
                input.key_marker.as_deref(),
                input.upload_id_marker.as_deref(),
                max as usize,
            )
            .await
            .map_err(s3_error)?;
        let last = uploads.last().cloned().filter(|_| truncated);
        let uploads = uploads
            .into_iter()
            .map(|u| MultipartUpload {
                key: Some(u.key),
                upload_id: Some(u.upload_id),
                initiated: Some(timestamp(u.created_ms)),
                initiator: Some(Initiator {
                    display_name: Some(OWNER.into()),
                    id: Some(OWNER.into()),
                }),
                owner: Some(owner()),
                storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: Some(prefix),
            key_marker: input.key_marker,
            upload_id_marker: input.upload_id_marker,
            max_uploads: Some(max),
            is_truncated: Some(truncated),
            next_key_marker: last.as_ref().map(|u| u.key.clone()),
            next_upload_id_marker: last.map(|u| u.upload_id),
            uploads: Some(uploads),
            ..Default::default()
        }))
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        let parts = self
            .store
            .list_parts(&input.bucket, &input.key, &input.upload_id)
            .await
            .map_err(s3_error)?;
        let marker = input.part_number_marker.unwrap_or(0);
        let max_parts = input.max_parts.unwrap_or(MAX_KEYS).clamp(0, MAX_KEYS) as usize;
        let mut after: Vec<_> = parts
            .into_iter()
            .filter(|p| p.part.number > marker)
            .collect();
        let truncated = after.len() > max_parts;
        after.truncate(max_parts);
        let next = truncated
            .then(|| after.last().map(|p| p.part.number))
            .flatten();
        let parts = after
            .into_iter()
            .map(|p| Part {
                e_tag: Some(ETag::Strong(p.part.etag)),
                last_modified: Some(timestamp(p.modified_ms)),
                part_number: Some(p.part.number),
                size: Some(p.part.size as i64),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            part_number_marker: input.part_number_marker,
            max_parts: Some(max_parts as i32),
            is_truncated: Some(truncated),
            next_part_number_marker: next,
            parts: Some(parts),
            owner: Some(owner()),
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// `e` as a client sees it: code, HTTP status, message.
    fn check(e: StoreError, code: &str, status: u16, message: &str) {
        let err = s3_error(e);
        assert_eq!(err.code().as_str(), code);
        assert_eq!(
            err.status_code().map(|s| s.as_u16()),
            Some(status),
            "{code}"
        );
        assert_eq!(err.message(), Some(message), "{code}");
    }

    fn io(kind: std::io::ErrorKind) -> std::io::Error {
        std::io::Error::new(kind, "disk says no")
    }

    #[test]
    fn store_errors_as_s3_errors() {
        let b = || "sebs-b".to_string();
        check(
            StoreError::NoSuchKey {
                bucket: b(),
                key: "in/a.jpg".into(),
            },
            "NoSuchKey",
            404,
            "failed to find in/a.jpg in bucket sebs-b: no such key",
        );
        check(
            StoreError::BucketExists { bucket: b() },
            "BucketAlreadyOwnedByYou",
            409,
            "failed to create bucket sebs-b: it exists already and is yours",
        );
        check(
            StoreError::Full {
                bucket: b(),
                key: "out/x".into(),
                path: PathBuf::from("/data/s3/tmp/1"),
            },
            "XMinioStorageFull",
            507,
            "failed to store out/x in bucket sebs-b: no space left on the device of /data/s3/tmp/1",
        );
        check(
            StoreError::Completion {
                bucket: b(),
                key: "big".into(),
                source: CompletionError::TooSmall {
                    number: 1,
                    size: 10,
                },
            },
            "EntityTooSmall",
            400,
            "failed to complete the upload of big in bucket sebs-b: assemble part 1 of 10 bytes: \
             every part but the last needs at least 5242880",
        );
        check(
            StoreError::InvalidKey {
                bucket: b(),
                source: KeyError::TooLong { len: 2000 },
            },
            "KeyTooLongError",
            400,
            "failed to store an object in bucket sebs-b: accept an object key of 2000 bytes: the \
             limit is 1024",
        );
        // The cause is said once, after the context.
        check(
            StoreError::Io {
                op: "open",
                bucket: b(),
                key: "k".into(),
                path: PathBuf::from("/data/s3/objects/1"),
                source: io(std::io::ErrorKind::PermissionDenied),
            },
            "InternalError",
            500,
            "failed to open k of bucket sebs-b at /data/s3/objects/1: disk says no",
        );
        // A body s3s refused keeps s3s's answer.
        let refused = s3s::s3_error!(SignatureDoesNotMatch, "the chunk is not what was signed");
        check(
            StoreError::Body {
                bucket: b(),
                key: "k".into(),
                source: Box::new(refused),
            },
            "SignatureDoesNotMatch",
            403,
            "the chunk is not what was signed",
        );
        // A client that went away mid-body.
        check(
            StoreError::Body {
                bucket: b(),
                key: "k".into(),
                source: Box::new(io(std::io::ErrorKind::ConnectionReset)),
            },
            "IncompleteBody",
            400,
            "failed to receive k for bucket sebs-b: disk says no",
        );
    }

    #[test]
    fn continuation_tokens_round_trip_and_strangers_are_refused() {
        for name in ["", "a", "tree/sub/", "ünï cödé+%"] {
            assert_eq!(resume_after(&continuation_token(name)).unwrap(), name);
        }
        let e = resume_after("not-hex").unwrap_err();
        assert_eq!(e.code().as_str(), "InvalidArgument");
    }
}

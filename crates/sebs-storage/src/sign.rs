//! SigV4 signatures on our HTTP requests to S3 and DynamoDB API endpoints, with AWS's own
//! signer (`aws-sigv4`), so that a real endpoint (AWS, MinIO, ScyllaDB with auth) accepts
//! what the embedded stores accept.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;

/// The region we sign with when none is given: the one S3 clients default to.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Keys and scope of the requests to one endpoint.
#[derive(Clone)]
pub struct Signer {
    access_key: String,
    secret_key: String,
    region: String,
    service: &'static str,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret stays out of logs and error messages.
        f.debug_struct("Signer")
            .field("access_key", &self.access_key)
            .field("region", &self.region)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

/// What the signature covers of a request's body.
pub enum Payload<'a> {
    /// A body held in memory, hashed into the signature.
    Bytes(&'a [u8]),
    /// A streamed body (a file upload): S3's `UNSIGNED-PAYLOAD`.
    Unsigned,
}

/// A request the signer could not sign (a malformed URL or header).
#[derive(Debug, thiserror::Error)]
#[error("sign a request to {uri}: {message}")]
pub struct SignError {
    pub uri: String,
    pub message: String,
}

impl Signer {
    /// A signer for S3 (`service` "s3") or DynamoDB ("dynamodb").
    pub fn new(access_key: &str, secret_key: &str, region: &str, service: &'static str) -> Self {
        Signer {
            access_key: access_key.to_string(),
            secret_key: secret_key.to_string(),
            region: region.to_string(),
            service,
        }
    }

    /// Adds the signature headers to `request`.
    pub fn sign<B>(
        &self,
        request: &mut http::Request<B>,
        payload: Payload<'_>,
    ) -> Result<(), SignError> {
        let uri = request.uri().to_string();
        let err = |message: String| SignError {
            uri: uri.clone(),
            message,
        };
        let identity =
            Credentials::new(&self.access_key, &self.secret_key, None, None, "sebs-local").into();
        let mut settings = SigningSettings::default();
        if self.service == "s3" {
            // S3's rules: keys are encoded once and never normalised, and the payload's hash
            // travels in a header of its own.
            settings.percent_encoding_mode = PercentEncodingMode::Single;
            settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        }
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(self.service)
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| err(e.to_string()))?
            .into();
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let body = match payload {
            Payload::Bytes(b) => SignableBody::Bytes(b),
            Payload::Unsigned => SignableBody::UnsignedPayload,
        };
        let signable = SignableRequest::new(
            request.method().as_str(),
            &uri,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            body,
        )
        .map_err(|e| err(e.to_string()))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| err(e.to_string()))?
            .into_parts();
        instructions.apply_to_request_http1x(request);
        Ok(())
    }
}

/// S3's encoding of a key or query value: everything but `A-Za-z0-9-_.~` as `%XX`, and `/`
/// kept in paths (`keep_slash`).
pub fn uri_encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_is_s3s() {
        let check = |text: &str, keep: bool, expect: &str| {
            assert_eq!(uri_encode(text, keep), expect, "{text}");
        };
        check("a/b c.jpg", true, "a/b%20c.jpg");
        check("a/b c.jpg", false, "a%2Fb%20c.jpg");
        check(
            "311.compression-0-input/acmart-master/README",
            true,
            "311.compression-0-input/acmart-master/README",
        );
        check("x+y=z&ü~", true, "x%2By%3Dz%26%C3%BC~");
    }

    #[test]
    fn signatures_carry_the_s3_headers_and_never_the_secret_in_debug() {
        let signer = Signer::new("ak", "secret-key", DEFAULT_REGION, "s3");
        let mut request = http::Request::builder()
            .method("GET")
            .uri("http://127.0.0.1:9000/bucket/a%20b")
            .body(())
            .unwrap();
        signer.sign(&mut request, Payload::Bytes(b"")).unwrap();
        let auth = request.headers()["authorization"].to_str().unwrap();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=ak/"),
            "{auth}"
        );
        assert!(auth.contains("/us-east-1/s3/aws4_request"), "{auth}");
        assert!(request.headers().contains_key("x-amz-content-sha256"));
        assert!(request.headers().contains_key("x-amz-date"));
        assert!(!format!("{signer:?}").contains("secret-key"));
    }
}

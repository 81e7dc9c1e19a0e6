//! ETags and digests as S3 computes them: the MD5 of a simple upload, the MD5 of the parts'
//! MD5s for a multipart upload, and the check of a client's `Content-MD5`.

use base64::Engine as _;
use md5::{Digest as _, Md5};

/// The ETag of an object written in one PUT: its MD5 in lowercase hex (unquoted; quotes
/// are the protocol's business).
pub fn etag(md5: &[u8; 16]) -> String {
    hex::encode(md5)
}

/// The ETag of a completed multipart upload from its parts' ETags, in order: the MD5 of
/// the concatenated binary part MD5s, then `-` and the number of parts, as S3 and MinIO
/// compute it. `None` when a part's ETag is not an MD5 in hex.
pub fn multipart_etag<'a>(parts: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut hasher = Md5::new();
    let mut count = 0usize;
    for part in parts {
        let mut raw = [0u8; 16];
        hex::decode_to_slice(part, &mut raw).ok()?;
        hasher.update(raw);
        count += 1;
    }
    Some(format!("{}-{count}", hex::encode(hasher.finalize())))
}

/// The `Content-MD5` header is not base64 of 16 bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("read Content-MD5 {value:?}: not the base64 of an MD5")]
pub struct InvalidDigest {
    pub value: String,
}

/// Whether the body whose MD5 is `md5` is what the client's `Content-MD5` says it sent.
pub fn content_md5_matches(header: &str, md5: &[u8; 16]) -> Result<bool, InvalidDigest> {
    let claimed = base64::engine::general_purpose::STANDARD
        .decode(header.trim())
        .ok()
        .filter(|b| b.len() == 16)
        .ok_or_else(|| InvalidDigest {
            value: header.to_string(),
        })?;
    Ok(claimed == md5)
}

/// A running MD5 of a body, so that uploads are hashed as they stream to disk.
#[derive(Default, Clone)]
pub struct Hasher(Md5);

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn finish(self) -> [u8; 16] {
        self.0.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md5_of(bytes: &[u8]) -> [u8; 16] {
        let mut h = Hasher::default();
        h.update(bytes);
        h.finish()
    }

    #[test]
    fn simple_etags_are_the_md5() {
        for (body, expect) in [
            (&b""[..], "d41d8cd98f00b204e9800998ecf8427e"),
            (b"hello", "5d41402abc4b2a76b9719d911017c592"),
        ] {
            assert_eq!(etag(&md5_of(body)), expect);
        }
        // Hashing in pieces is hashing the whole.
        let mut h = Hasher::default();
        h.update(b"hel");
        h.update(b"lo");
        assert_eq!(etag(&h.finish()), "5d41402abc4b2a76b9719d911017c592");
    }

    #[test]
    fn multipart_etags() {
        // md5(md5("hello") ++ md5("")) as bytes, then the part count.
        let mut concat = md5_of(b"hello").to_vec();
        concat.extend(md5_of(b""));
        let expect = format!("{}-2", hex::encode(md5_of(&concat)));
        assert_eq!(
            multipart_etag([
                "5d41402abc4b2a76b9719d911017c592",
                "d41d8cd98f00b204e9800998ecf8427e"
            ]),
            Some(expect)
        );
        // One part still gets its suffix.
        assert_eq!(
            multipart_etag(["5d41402abc4b2a76b9719d911017c592"]).unwrap(),
            format!("{}-1", hex::encode(md5_of(&md5_of(b"hello"))))
        );
        assert_eq!(multipart_etag(["not-hex"]), None);
        assert_eq!(multipart_etag(["5d41402abc4b2a76"]), None);
    }

    #[test]
    fn content_md5() {
        let md5 = md5_of(b"hello");
        // base64 of md5("hello").
        assert_eq!(
            content_md5_matches("XUFAKrxLKna5cZ2REBfFkg==", &md5),
            Ok(true)
        );
        assert_eq!(
            content_md5_matches("1B2M2Y8AsgTpgAmY7PhCfg==", &md5),
            Ok(false)
        );
        assert!(content_md5_matches("not base64!", &md5).is_err());
        assert!(content_md5_matches("aGVsbG8=", &md5).is_err(), "5 bytes");
    }
}

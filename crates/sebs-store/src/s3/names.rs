//! Object keys: which ones the store accepts, and how listings encode them when a client
//! asks for `encoding-type=url`.
//!
//! Keys never become paths (object bytes live in files named by random ids), so `..`,
//! leading slashes or `a` beside `a/b` need no special rules; what is refused is what S3
//! refuses or what could not round-trip through the metadata database and XML.

/// S3's longest key, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// Why a key is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("accept an empty object key")]
    Empty,
    #[error("accept an object key of {len} bytes: the limit is {MAX_KEY_BYTES}")]
    TooLong { len: usize },
    #[error("accept an object key with a control character ({code:#04x}): XML cannot carry it")]
    ControlCharacter { code: u32 },
}

/// Checks that `key` can be stored and listed.
pub fn check_key(key: &str) -> Result<(), KeyError> {
    if key.is_empty() {
        return Err(KeyError::Empty);
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(KeyError::TooLong { len: key.len() });
    }
    // XML 1.0 has no way to write these (not even escaped), so a listing could not name
    // the object; tab, newline and carriage return are legal XML and allowed.
    if let Some(c) = key
        .chars()
        .find(|c| (*c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(KeyError::ControlCharacter { code: c as u32 });
    }
    Ok(())
}

/// `name` percent-encoded as S3 encodes names in listings for `encoding-type=url`: every
/// byte but `A-Z a-z 0-9 - _ . ~ /` as `%XX`.
///
/// Clients decode with `unquote_plus` (boto3, minio-py) or `decodeURIComponent` after
/// turning `+` into a space (minio-js), so `+` and space must both be encoded.
pub fn url_encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for &b in name.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(key: &str, expect: Result<(), KeyError>) {
        assert_eq!(check_key(key), expect, "{key:?}");
    }

    #[test]
    fn keys() {
        check("a", Ok(()));
        check("a/b/../c", Ok(()));
        check("/leading/slash", Ok(()));
        check("dir/", Ok(()));
        check("spaces and+plus%25.txt", Ok(()));
        check("ünïcödé/ключ/鍵", Ok(()));
        check("tab\tand\nnewline", Ok(()));
        check(&"k".repeat(1024), Ok(()));
        check("", Err(KeyError::Empty));
        check(&"k".repeat(1025), Err(KeyError::TooLong { len: 1025 }));
        // 342 three-byte characters are 1026 bytes.
        check(&"鍵".repeat(342), Err(KeyError::TooLong { len: 1026 }));
        check("nul\0byte", Err(KeyError::ControlCharacter { code: 0 }));
        check("bell\u{7}", Err(KeyError::ControlCharacter { code: 7 }));
    }

    #[test]
    fn messages_name_the_problem() {
        assert_eq!(
            KeyError::ControlCharacter { code: 0 }.to_string(),
            "accept an object key with a control character (0x00): XML cannot carry it"
        );
    }

    #[test]
    fn url_encoding() {
        for (name, expect) in [
            ("plain/key-1_2.3~4", "plain/key-1_2.3~4"),
            ("a b+c", "a%20b%2Bc"),
            ("100%", "100%25"),
            ("ü", "%C3%BC"),
            ("q?x=1&y", "q%3Fx%3D1%26y"),
            ("", ""),
        ] {
            assert_eq!(url_encode(name), expect, "{name:?}");
        }
    }
}

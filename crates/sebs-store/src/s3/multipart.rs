//! Which stored parts a CompleteMultipartUpload assembles, by S3's rules: the client names
//! its parts in ascending order with the ETags it was given, and every part but the last
//! holds at least 5 MiB.

/// S3's smallest part, except for the last one.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// A part as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPart {
    pub number: i32,
    pub size: u64,
    /// Unquoted.
    pub etag: String,
}

/// A part as the client names it in its completion request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedPart {
    pub number: i32,
    /// As the client sent it; quotes are ignored.
    pub etag: String,
}

/// Why a completion is refused; each maps to S3's error code of the same meaning.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompletionError {
    /// `MalformedXML`.
    #[error("assemble an upload from no parts")]
    NoParts,
    /// `InvalidPartOrder`.
    #[error("assemble part {number}: parts must be listed in ascending order")]
    OutOfOrder { number: i32 },
    /// `InvalidPart`.
    #[error("assemble part {number}: it was never uploaded")]
    Missing { number: i32 },
    /// `InvalidPart`.
    #[error("assemble part {number}: its ETag is {stored:?}, not {named:?}")]
    WrongEtag {
        number: i32,
        stored: String,
        named: String,
    },
    /// `EntityTooSmall`.
    #[error("assemble part {number} of {size} bytes: every part but the last needs at least {MIN_PART_SIZE}")]
    TooSmall { number: i32, size: u64 },
}

/// The stored parts that `named` selects, in order.
///
/// `stored` may hold parts the client does not name (uploaded and then left out); they are
/// not part of the object.
pub fn select(
    named: &[NamedPart],
    stored: &[StoredPart],
) -> Result<Vec<StoredPart>, CompletionError> {
    if named.is_empty() {
        return Err(CompletionError::NoParts);
    }
    let mut chosen = Vec::with_capacity(named.len());
    let mut previous: Option<i32> = None;
    for part in named {
        if previous.is_some_and(|p| part.number <= p) {
            return Err(CompletionError::OutOfOrder {
                number: part.number,
            });
        }
        previous = Some(part.number);
        let found =
            stored
                .iter()
                .find(|s| s.number == part.number)
                .ok_or(CompletionError::Missing {
                    number: part.number,
                })?;
        let named_etag = part.etag.trim_matches('"');
        if found.etag != named_etag {
            return Err(CompletionError::WrongEtag {
                number: part.number,
                stored: found.etag.clone(),
                named: named_etag.to_string(),
            });
        }
        chosen.push(found.clone());
    }
    if let Some(small) = chosen[..chosen.len() - 1]
        .iter()
        .find(|p| p.size < MIN_PART_SIZE)
    {
        return Err(CompletionError::TooSmall {
            number: small.number,
            size: small.size,
        });
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn stored(parts: &[(i32, u64)]) -> Vec<StoredPart> {
        parts
            .iter()
            .map(|&(number, size)| StoredPart {
                number,
                size,
                etag: format!("e{number}"),
            })
            .collect()
    }

    fn named(numbers: &[i32]) -> Vec<NamedPart> {
        numbers
            .iter()
            .map(|&number| NamedPart {
                number,
                etag: format!("\"e{number}\""),
            })
            .collect()
    }

    fn check(
        named: &[NamedPart],
        stored: &[StoredPart],
        expect: Result<Vec<i32>, CompletionError>,
    ) {
        let got = select(named, stored).map(|parts| parts.iter().map(|p| p.number).collect());
        assert_eq!(got, expect, "named {named:?}, stored {stored:?}");
    }

    #[test]
    fn completions() {
        let three = stored(&[(1, 5 * MIB), (2, 8 * MIB), (3, 1)]);
        check(&named(&[1, 2, 3]), &three, Ok(vec![1, 2, 3]));
        // A part left out is not part of the object; numbers need not be contiguous.
        check(&named(&[1, 3]), &three, Ok(vec![1, 3]));
        // One small part is a whole (small) object.
        check(&named(&[3]), &three, Ok(vec![3]));
        check(&named(&[]), &three, Err(CompletionError::NoParts));
        check(
            &named(&[2, 1]),
            &three,
            Err(CompletionError::OutOfOrder { number: 1 }),
        );
        check(
            &named(&[1, 1]),
            &three,
            Err(CompletionError::OutOfOrder { number: 1 }),
        );
        check(
            &named(&[1, 4]),
            &three,
            Err(CompletionError::Missing { number: 4 }),
        );
        check(
            &named(&[3, 4]),
            &stored(&[(3, 1), (4, 1)]),
            Err(CompletionError::TooSmall { number: 3, size: 1 }),
        );
        check(
            &named(&[1, 2]),
            &stored(&[(1, 5 * MIB - 1), (2, 1)]),
            Err(CompletionError::TooSmall {
                number: 1,
                size: 5 * MIB - 1,
            }),
        );
        let unquoted = vec![NamedPart {
            number: 1,
            etag: "e1".into(),
        }];
        check(&unquoted, &three, Ok(vec![1]));
        let wrong = vec![NamedPart {
            number: 1,
            etag: "\"e2\"".into(),
        }];
        check(
            &wrong,
            &three,
            Err(CompletionError::WrongEtag {
                number: 1,
                stored: "e1".into(),
                named: "e2".into(),
            }),
        );
    }
}

//! Object listings as S3 defines them: a prefix, an optional delimiter that rolls keys up
//! into common prefixes, a page size and a resume point, over keys in ascending byte order.
//!
//! A pure function of the keys it is handed, so that ListObjects (v1) and ListObjectsV2
//! share one set of rules, and both are tested without a store.

/// One object as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub size: u64,
    /// The ETag without quotes.
    pub etag: String,
    /// Milliseconds since the Unix epoch.
    pub modified_ms: i64,
}

/// What a listing asks for.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    /// Only keys that start with this (empty: every key).
    pub prefix: &'a str,
    /// Keys with this after the prefix are rolled up into one common prefix, which ends
    /// with the delimiter. An empty delimiter is none.
    pub delimiter: Option<&'a str>,
    /// Resume after this name: a key, or a common prefix returned by an earlier page
    /// (v1's marker, v2's start-after or continuation token).
    pub after: Option<&'a str>,
    /// Objects plus common prefixes on one page; 0 gives an empty, complete page.
    pub max_keys: usize,
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub objects: Vec<Entry>,
    pub common_prefixes: Vec<String>,
    /// Where the next page starts (the last name on this one) when the listing is
    /// truncated; `None` when this page is the last.
    pub next_after: Option<String>,
}

/// The page of `entries` that `query` selects.
///
/// `entries` must be in ascending byte order of their keys; it may hold keys outside the
/// prefix or before the resume point (they are skipped), so a caller can hand in a cheap
/// superset. Every name on a page (a key or a common prefix) is greater than `after`, which
/// is what makes the last name of a page a correct resume point even when it is a common
/// prefix: the keys under it all roll up to it and are skipped on the next page.
pub fn page(query: &Query<'_>, entries: impl IntoIterator<Item = Entry>) -> Page {
    let delimiter = query.delimiter.filter(|d| !d.is_empty());
    let mut page = Page::default();
    if query.max_keys == 0 {
        return page;
    }
    let mut count = 0;
    // The last name put on the page, so that keys under one common prefix count once.
    let mut last: Option<String> = None;
    for entry in entries {
        if !entry.key.starts_with(query.prefix) {
            if entry.key.as_str() > query.prefix {
                // Keys with the prefix are contiguous in byte order: none follow.
                break;
            }
            continue;
        }
        let rolled_up = delimiter.and_then(|d| {
            entry.key[query.prefix.len()..]
                .find(d)
                .map(|at| entry.key[..query.prefix.len() + at + d.len()].to_string())
        });
        let name = rolled_up.as_deref().unwrap_or(&entry.key);
        if query.after.is_some_and(|after| name <= after) {
            continue;
        }
        if last.as_deref() == Some(name) {
            continue;
        }
        if count == query.max_keys {
            page.next_after = last;
            break;
        }
        count += 1;
        last = Some(name.to_string());
        match rolled_up {
            Some(prefix) => page.common_prefixes.push(prefix),
            None => page.objects.push(entry),
        }
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lists `keys` (given in any order) and renders the page as `names | next`, where a
    /// common prefix is shown as `[prefix]`.
    fn check(keys: &[&str], query: Query<'_>, expect: &str) {
        let mut sorted: Vec<&str> = keys.to_vec();
        sorted.sort_unstable();
        let entries = sorted.iter().map(|k| Entry {
            key: k.to_string(),
            size: k.len() as u64,
            etag: format!("etag-{k}"),
            modified_ms: 0,
        });
        let page = page(&query, entries);
        for object in &page.objects {
            assert_eq!(
                object.size,
                object.key.len() as u64,
                "sizes travel with keys"
            );
            assert_eq!(object.etag, format!("etag-{}", object.key));
        }
        // Objects and prefixes interleave by name, as S3 orders them.
        let mut names: Vec<String> = page.objects.iter().map(|o| o.key.clone()).collect();
        names.extend(page.common_prefixes.iter().map(|p| format!("[{p}]")));
        names.sort_by(|a, b| a.trim_start_matches('[').cmp(b.trim_start_matches('[')));
        let mut shown = names.join(" ");
        if let Some(next) = &page.next_after {
            shown.push_str(&format!(" | {next}"));
        }
        assert_eq!(shown, expect, "keys {keys:?}, {query:?}");
    }

    fn q(
        prefix: &'static str,
        delimiter: Option<&'static str>,
        after: Option<&'static str>,
    ) -> Query<'static> {
        Query {
            prefix,
            delimiter,
            after,
            max_keys: 1000,
        }
    }

    fn max(mut query: Query<'static>, max_keys: usize) -> Query<'static> {
        query.max_keys = max_keys;
        query
    }

    const TREE: &[&str] = &[
        "big/a.bin",
        "big/b.bin",
        "in/acmart/README",
        "in/acmart/doc/guide.tex",
        "in/acmart/doc/x/deep.tex",
        "in/x.jpg",
        "in-not/y",
        "a",
        "a/b",
        "zz",
    ];

    #[test]
    fn prefixes_select_and_keep_whole_names() {
        check(TREE, q("", None, None), "a a/b big/a.bin big/b.bin in-not/y in/acmart/README in/acmart/doc/guide.tex in/acmart/doc/x/deep.tex in/x.jpg zz");
        // minio-py's recursive listing of a prefix: every name complete.
        check(TREE, q("big/", None, None), "big/a.bin big/b.bin");
        check(TREE, q("big", None, None), "big/a.bin big/b.bin");
        check(
            TREE,
            q("in/acmart", None, None),
            "in/acmart/README in/acmart/doc/guide.tex in/acmart/doc/x/deep.tex",
        );
        check(
            TREE,
            q("in", None, None),
            "in-not/y in/acmart/README in/acmart/doc/guide.tex in/acmart/doc/x/deep.tex in/x.jpg",
        );
        check(TREE, q("nothing/", None, None), "");
        check(TREE, q("zzz", None, None), "");
        // A key and a "directory" of the same name coexist.
        check(TREE, q("a", None, None), "a a/b");
    }

    #[test]
    fn delimiters_roll_keys_up_into_common_prefixes() {
        check(
            TREE,
            q("", Some("/"), None),
            "a [a/] [big/] [in-not/] [in/] zz",
        );
        check(TREE, q("in/", Some("/"), None), "[in/acmart/] in/x.jpg");
        check(
            TREE,
            q("in/acmart/", Some("/"), None),
            "in/acmart/README [in/acmart/doc/]",
        );
        check(TREE, q("in", Some("/"), None), "[in-not/] [in/]");
        check(TREE, q("", Some(""), None), "a a/b big/a.bin big/b.bin in-not/y in/acmart/README in/acmart/doc/guide.tex in/acmart/doc/x/deep.tex in/x.jpg zz");
        // A delimiter of more than one character.
        check(
            &["x--y--z", "x--w", "xy"],
            q("", Some("--"), None),
            "[x--] xy",
        );
        check(
            &["x--y--z", "x--w", "xy"],
            q("x--", Some("--"), None),
            "x--w [x--y--]",
        );
    }

    #[test]
    fn pages_resume_after_their_last_name() {
        check(TREE, max(q("big/", None, None), 1), "big/a.bin | big/a.bin");
        check(
            TREE,
            max(q("big/", None, Some("big/a.bin")), 1),
            "big/b.bin",
        );
        check(TREE, max(q("big/", None, None), 2), "big/a.bin big/b.bin");
        // A page that ends on a common prefix resumes after every key under it.
        check(TREE, max(q("", Some("/"), None), 3), "a [a/] [big/] | big/");
        check(
            TREE,
            max(q("", Some("/"), Some("big/")), 3),
            "[in-not/] [in/] zz",
        );
        check(
            TREE,
            max(q("in/", Some("/"), Some("in/acmart/")), 3),
            "in/x.jpg",
        );
        // start-after a key that is not there.
        check(TREE, q("", None, Some("b")), "big/a.bin big/b.bin in-not/y in/acmart/README in/acmart/doc/guide.tex in/acmart/doc/x/deep.tex in/x.jpg zz");
        check(TREE, q("", None, Some("zz")), "");
        check(TREE, max(q("", None, None), 0), "");
    }

    #[test]
    fn walking_every_page_lists_every_name_once() {
        for size in 1..=4 {
            for delimiter in [None, Some("/")] {
                let mut after: Option<String> = None;
                let mut seen = Vec::new();
                loop {
                    let query = Query {
                        prefix: "",
                        delimiter,
                        after: after.as_deref(),
                        max_keys: size,
                    };
                    let mut sorted = TREE.to_vec();
                    sorted.sort_unstable();
                    let entries = sorted.iter().map(|k| Entry {
                        key: k.to_string(),
                        size: 0,
                        etag: String::new(),
                        modified_ms: 0,
                    });
                    let page = page(&query, entries);
                    assert!(page.objects.len() + page.common_prefixes.len() <= size);
                    seen.extend(page.objects.into_iter().map(|o| o.key));
                    seen.extend(page.common_prefixes);
                    match page.next_after {
                        Some(next) => after = Some(next),
                        None => break,
                    }
                }
                seen.sort_unstable();
                let expect = if delimiter.is_some() { 6 } else { TREE.len() };
                assert_eq!(
                    seen.len(),
                    expect,
                    "page size {size}, {delimiter:?}: {seen:?}"
                );
                let mut unique = seen.clone();
                unique.dedup();
                assert_eq!(unique, seen, "a name listed twice");
            }
        }
    }
}

//! Image choice: the official image of a language version and the tag of our fallback.

use sebs_wire::Language;

/// The repository our fallback images are tagged into.
pub const FALLBACK_REPOSITORY: &str = "sebs-local/base";

/// The image to run a language version in: the official one, else our fallback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageChoice {
    /// e.g. `python:3.11-slim`.
    pub official: String,
    /// e.g. `sebs-local/base:python-3.11`.
    pub fallback: String,
}

impl ImageChoice {
    /// `python:<v>-slim` or `node:<v>-slim`, with our `sebs-local/base:<language>-<v>`.
    pub fn for_language(language: Language, version: &str) -> ImageChoice {
        let official = match language {
            Language::Python => format!("python:{version}-slim"),
            Language::Nodejs => format!("node:{version}-slim"),
        };
        ImageChoice {
            official,
            fallback: fallback_tag(FALLBACK_REPOSITORY, language, version),
        }
    }
}

/// `<repository>:<language>-<version>`, the tag of a fallback image.
pub(super) fn fallback_tag(repository: &str, language: Language, version: &str) -> String {
    format!("{repository}:{}-{version}", language.as_str())
}

/// Splits `name[:tag]` at the tag's colon, leaving a registry's `host:port/` alone.
pub fn split_reference(image: &str) -> (&str, Option<&str>) {
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(i) => (&image[..last_slash + i], Some(&image[last_slash + i + 1..])),
        None => (image, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_per_language() {
        fn check(language: Language, version: &str, official: &str, fallback: &str) {
            let c = ImageChoice::for_language(language, version);
            assert_eq!(
                (c.official.as_str(), c.fallback.as_str()),
                (official, fallback)
            );
        }
        check(
            Language::Python,
            "3.11",
            "python:3.11-slim",
            "sebs-local/base:python-3.11",
        );
        check(
            Language::Nodejs,
            "18",
            "node:18-slim",
            "sebs-local/base:nodejs-18",
        );
    }

    #[test]
    fn references_split_at_the_tag() {
        fn check(image: &str, expect: (&str, Option<&str>)) {
            assert_eq!(split_reference(image), expect, "{image}");
        }
        check("python:3.11-slim", ("python", Some("3.11-slim")));
        check(
            "sebs-local/base:python-3.11",
            ("sebs-local/base", Some("python-3.11")),
        );
        check("localhost:5000/base", ("localhost:5000/base", None));
        check("localhost:5000/base:1", ("localhost:5000/base", Some("1")));
        check("ubuntu", ("ubuntu", None));
    }
}

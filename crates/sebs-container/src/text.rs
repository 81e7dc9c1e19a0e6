//! Text for people and for the engine: the tail of a command's output that errors quote, and
//! a name made fit to be part of a container's name.

/// The last `n` lines of `text`, with a note when some were left out.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    if lines.len() <= n {
        return lines.join("\n");
    }
    let skipped = lines.len() - n;
    format!(
        "[{skipped} earlier lines left out]\n{}",
        lines[skipped..].join("\n")
    )
}

/// `name` as part of a container name, which Docker allows as `[a-zA-Z0-9][a-zA-Z0-9_.-]*`:
/// any other character becomes `-`, and what cannot start a name is trimmed from the start.
pub fn name_part(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    s.trim_start_matches(['.', '-', '_']).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_cut_to_its_last_lines() {
        for (text, n, expect) in [
            ("a\nb\nc\n", 5, "a\nb\nc"),
            ("a\nb\nc\n", 2, "[1 earlier lines left out]\nb\nc"),
            ("a\nb\nc", 3, "a\nb\nc"),
            ("", 2, ""),
        ] {
            assert_eq!(last_lines(text, n), expect, "{text:?}, {n}");
        }
    }

    #[test]
    fn names_fit_a_container_name() {
        for (name, expect) in [
            ("110.dynamic-html-python-128", "110.dynamic-html-python-128"),
            ("110.template/x y", "110.template-x-y"),
            ("a b/c", "a-b-c"),
            (".x", "x"),
            ("-_.x-", "x-"),
        ] {
            assert_eq!(name_part(name), expect, "{name:?}");
        }
    }
}

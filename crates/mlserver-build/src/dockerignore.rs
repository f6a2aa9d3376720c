//! `.dockerignore` with Docker's own rules, so `mlserver build` sends exactly
//! what `docker build` would:
//!
//! - one pattern per line; `#` starts a comment line; blank lines are skipped;
//! - `!` re-includes; the last pattern that matches a path decides;
//! - patterns are cleaned like Go's `filepath.Clean` and are relative to the
//!   context root (a leading `/` is dropped);
//! - Go `filepath.Match` syntax per path segment (`*`, `?`, `[a-z]`, `[^x]`,
//!   `\` escapes), plus `**` for any number of directories;
//! - a pattern that matches a directory also matches everything below it.

/// Why a `.dockerignore` could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreError {
    /// A pattern is not valid `filepath.Match` syntax.
    #[error(".dockerignore line {line}: invalid pattern {pattern:?}: {reason}")]
    BadPattern {
        /// The pattern's line number, from 1.
        line: usize,
        /// The line as written.
        pattern: String,
        /// What is wrong with it, e.g. an unterminated character class.
        reason: &'static str,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    segments: Vec<String>,
    negated: bool,
}

/// A parsed `.dockerignore`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

impl DockerIgnore {
    /// Nothing excluded.
    pub fn empty() -> Self {
        DockerIgnore::default()
    }

    /// Parses `.dockerignore` text; an invalid pattern is an error.
    pub fn parse(text: &str) -> Result<Self, IgnoreError> {
        let mut patterns = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            if raw.starts_with('#') {
                continue;
            }
            let mut line = raw.trim();
            if line.is_empty() {
                continue;
            }
            let negated = line.starts_with('!');
            if negated {
                line = line[1..].trim_start();
            }
            let cleaned = clean(line);
            if cleaned.is_empty() {
                continue;
            }
            let segments: Vec<String> = cleaned.split('/').map(str::to_owned).collect();
            for segment in &segments {
                validate_segment(segment).map_err(|reason| IgnoreError::BadPattern {
                    line: i + 1,
                    pattern: raw.to_owned(),
                    reason,
                })?;
            }
            patterns.push(Pattern { segments, negated });
        }
        Ok(DockerIgnore { patterns })
    }

    /// Whether `relative_path` (from the context root, `/`-separated) is
    /// left out of the context.
    pub fn is_excluded(&self, relative_path: &str) -> bool {
        let cleaned = clean(relative_path);
        let path: Vec<&str> = cleaned.split('/').filter(|s| !s.is_empty()).collect();
        let mut excluded = false;
        for pattern in &self.patterns {
            if matches_or_parent_matches(&pattern.segments, &path) {
                excluded = !pattern.negated;
            }
        }
        excluded
    }

    /// Whether a walker must still look inside the excluded directory
    /// `dir_relative_path`: only a `!` pattern can bring something back, so
    /// without one the whole subtree is skipped.
    pub fn may_contain_included(&self, dir_relative_path: &str) -> bool {
        let cleaned = clean(dir_relative_path);
        let dir: Vec<&str> = cleaned.split('/').filter(|s| !s.is_empty()).collect();
        self.patterns
            .iter()
            .filter(|p| p.negated)
            .any(|p| could_match_below(&p.segments, &dir))
    }
}

/// Go's `filepath.Clean` for `/`-separated relative patterns, with a
/// leading `/` dropped.
fn clean(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|s| *s != "..") {
                    out.pop();
                } else if !path.starts_with('/') {
                    out.push("..");
                }
            }
            s => out.push(s),
        }
    }
    out.join("/")
}

fn validate_segment(segment: &str) -> Result<(), &'static str> {
    let chars: Vec<char> = segment.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                if i + 1 >= chars.len() {
                    return Err("trailing backslash");
                }
                i += 2;
            }
            '[' => {
                let end = class_end(&chars, i).ok_or("unterminated character class")?;
                i = end + 1;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Index of the `]` closing the class opened at `open`.
fn class_end(chars: &[char], open: usize) -> Option<usize> {
    let mut i = open + 1;
    if matches!(chars.get(i), Some('^') | Some('!')) {
        i += 1;
    }
    // A `]` right after the opening is a literal.
    if chars.get(i) == Some(&']') {
        i += 1;
    }
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            ']' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

fn matches_or_parent_matches(pattern: &[String], path: &[&str]) -> bool {
    (1..=path.len()).any(|n| match_segments(pattern, &path[..n]))
}

/// Whole-path match, segment by segment; `**` takes any number of segments.
fn match_segments(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| match_segments(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((segment, path_rest)) => {
                match_segment(first, segment) && match_segments(rest, path_rest)
            }
            None => false,
        },
    }
}

/// Whether a pattern could match some path strictly below `dir`.
fn could_match_below(pattern: &[String], dir: &[&str]) -> bool {
    match (pattern.split_first(), dir.split_first()) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some((first, _)), Some(_)) if first == "**" => true,
        (Some((first, rest)), Some((segment, dir_rest))) => {
            match_segment(first, segment) && could_match_below(rest, dir_rest)
        }
    }
}

/// Go's `filepath.Match` for one segment (no `/` on either side).
fn match_segment(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, 0, &n, 0)
}

fn match_from(p: &[char], mut pi: usize, n: &[char], mut ni: usize) -> bool {
    while pi < p.len() {
        match p[pi] {
            '*' => {
                // Collapse runs of `*`; then try every split.
                while pi < p.len() && p[pi] == '*' {
                    pi += 1;
                }
                return (ni..=n.len()).any(|k| match_from(p, pi, n, k));
            }
            '?' => {
                if ni >= n.len() {
                    return false;
                }
                pi += 1;
                ni += 1;
            }
            '[' => {
                let Some(end) = class_end(p, pi) else {
                    return false;
                };
                if ni >= n.len() || !class_matches(&p[pi + 1..end], n[ni]) {
                    return false;
                }
                pi = end + 1;
                ni += 1;
            }
            '\\' if pi + 1 < p.len() => {
                if ni >= n.len() || n[ni] != p[pi + 1] {
                    return false;
                }
                pi += 2;
                ni += 1;
            }
            c => {
                if ni >= n.len() || n[ni] != c {
                    return false;
                }
                pi += 1;
                ni += 1;
            }
        }
    }
    ni == n.len()
}

fn class_matches(class: &[char], c: char) -> bool {
    let (negated, mut body) = match class.first() {
        Some('^') | Some('!') => (true, &class[1..]),
        _ => (false, class),
    };
    let mut hit = false;
    while !body.is_empty() {
        let (lo, rest) = take_class_char(body);
        let (hi, rest) = if rest.first() == Some(&'-') && rest.len() > 1 {
            take_class_char(&rest[1..])
        } else {
            (lo, rest)
        };
        if lo <= c && c <= hi {
            hit = true;
        }
        body = rest;
    }
    hit != negated
}

fn take_class_char(s: &[char]) -> (char, &[char]) {
    if s[0] == '\\' && s.len() > 1 {
        (s[1], &s[2..])
    } else {
        (s[0], &s[1..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignore(text: &str) -> DockerIgnore {
        DockerIgnore::parse(text).unwrap()
    }

    #[test]
    fn comments_blanks_and_simple_globs() {
        let i = ignore("# a comment\n\n*.log\n  build/  \n");
        assert!(i.is_excluded("x.log"));
        assert!(!i.is_excluded("dir/x.log"), "* does not cross directories");
        assert!(i.is_excluded("build"));
        assert!(
            i.is_excluded("build/out/a.o"),
            "below an excluded directory"
        );
        assert!(!i.is_excluded("# a comment"));
        assert!(!i.is_excluded("builder"));
    }

    #[test]
    fn double_star_anywhere() {
        let i = ignore("**/*.pyc\na/**/z\nlogs/**\n");
        assert!(i.is_excluded("m.pyc"));
        assert!(i.is_excluded("deep/er/m.pyc"));
        assert!(i.is_excluded("a/z") && i.is_excluded("a/b/c/z"));
        assert!(!i.is_excluded("b/z"));
        assert!(i.is_excluded("logs/x/y"));
    }

    #[test]
    fn negation_and_last_match_wins() {
        let i = ignore("*.md\n!README.md\n");
        assert!(i.is_excluded("CHANGES.md"));
        assert!(!i.is_excluded("README.md"));
        let i = ignore("!README.md\n*.md\n");
        assert!(i.is_excluded("README.md"), "the later exclusion wins");
        let i = ignore("target\n!target/keep\n");
        assert!(i.is_excluded("target/x"));
        assert!(!i.is_excluded("target/keep"));
        assert!(i.may_contain_included("target"));
        assert!(!ignore("target\n").may_contain_included("target"));
        assert!(!i.may_contain_included("other"));
    }

    #[test]
    fn single_chars_and_classes() {
        let i = ignore("file?.txt\n[a-c]*.bin\nx[^0-9]\n\\*lit\n");
        assert!(i.is_excluded("file1.txt") && !i.is_excluded("file10.txt"));
        assert!(i.is_excluded("b.bin") && !i.is_excluded("d.bin"));
        assert!(i.is_excluded("xa") && !i.is_excluded("x1"));
        assert!(i.is_excluded("*lit") && !i.is_excluded("alit"));
    }

    #[test]
    fn patterns_are_cleaned() {
        let i = ignore("/root.txt\n./dot.txt\na/../b.txt\nc//d\n");
        assert!(i.is_excluded("root.txt"));
        assert!(i.is_excluded("dot.txt"));
        assert!(i.is_excluded("b.txt") && !i.is_excluded("a/b.txt"));
        assert!(i.is_excluded("c/d"));
        assert!(i.is_excluded("./root.txt"));
    }

    #[test]
    fn bad_patterns_are_errors() {
        let e = DockerIgnore::parse("ok\n[abc\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(DockerIgnore::parse("x\\").is_err());
        assert!(!DockerIgnore::empty().is_excluded("anything"));
    }
}

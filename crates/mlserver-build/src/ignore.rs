//! `.dockerignore` patterns, matched the way Docker matches them.
//!
//! The build context is filtered on our side of the Engine API (the daemon
//! takes whatever tar stream it is given), so a folder must lose exactly the
//! files `docker build` would drop: a pattern that keeps a secret or a
//! multi-gigabyte `target/` in the context here but not under the docker CLI
//! would be a surprise. Reading follows docker/cli's `ReadAll`, matching
//! follows moby/patternmatcher's `MatchesOrParentMatches`:
//!
//! - a line starting with `#` is a comment (only in the first column, as in
//!   Docker: `  # x` is a pattern), blank lines are skipped, and surrounding
//!   whitespace is trimmed;
//! - a leading `!` re-includes what earlier patterns excluded;
//! - the pattern is cleaned like Go's `filepath.Clean` and a leading `/` is
//!   dropped, since every pattern is relative to the context root anyway;
//! - `*`, `?`, `[...]` and `\` follow Go's `filepath.Match` (`*` and `?` never
//!   cross a `/`, classes are negated with `^`, not `!`), and `**` matches
//!   any number of directories, none included;
//! - a pattern matching a directory also matches everything below it;
//! - the last matching pattern decides.
//!
//! Docker turns patterns into regular expressions and passes character
//! classes through verbatim, so a class holding a regex metacharacter (say
//! `[*]`) behaves oddly there; here classes mean what `filepath.Match` says.

use std::fmt;

/// Why a `.dockerignore` could not be read. Docker refuses such a file
/// outright rather than guessing, and so do we: a silently dropped pattern
/// could put a file in the image that the author meant to keep out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreError {
    /// A line that is only `!`: Docker calls it an illegal exclusion pattern.
    #[error(".dockerignore line {line}: `!` must be followed by a pattern")]
    EmptyNegation { line: usize },
    /// A pattern `filepath.Match` would reject.
    #[error(".dockerignore line {line}: invalid pattern `{pattern}`: {reason}")]
    BadPattern {
        line: usize,
        pattern: String,
        reason: &'static str,
    },
}

/// Parsed `.dockerignore` rules, in file order (order matters: the last
/// matching pattern wins).
#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

impl DockerIgnore {
    /// Reads the text of a `.dockerignore` file.
    pub fn parse(text: &str) -> Result<DockerIgnore, IgnoreError> {
        // Editors on Windows like to start files with a byte-order mark;
        // Docker drops it too, or the first pattern would never match.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            if raw.starts_with('#') {
                continue;
            }
            let trimmed = raw.trim();
            if trimmed.is_empty() {
                continue;
            }
            let (negated, body) = match trimmed.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, trimmed),
            };
            let mut cleaned = clean(body);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            // `!` and `!/` both leave nothing to re-include once cleaned.
            if negated && (body.is_empty() || cleaned == "/") {
                return Err(IgnoreError::EmptyNegation { line });
            }
            let tokens = compile(&cleaned).map_err(|reason| IgnoreError::BadPattern {
                line,
                pattern: trimmed.to_owned(),
                reason,
            })?;
            patterns.push(Pattern {
                negated,
                text: cleaned,
                tokens,
            });
        }
        Ok(DockerIgnore { patterns })
    }

    /// No patterns: nothing is excluded. What a folder without a
    /// `.dockerignore` gets.
    pub fn empty() -> DockerIgnore {
        DockerIgnore::default()
    }

    /// Whether `relative_path` (relative to the context root, `/`-separated)
    /// stays out of the build context.
    ///
    /// A path is also excluded when one of its parent directories matches,
    /// which is what makes `target` drop `target/release/app` without
    /// needing `target/**`.
    pub fn is_excluded(&self, relative_path: &str) -> bool {
        let Some(path) = normalize(relative_path) else {
            // Docker will not let a pattern exclude the whole context.
            return false;
        };
        let parents = parents(&path);
        let mut excluded = false;
        for pattern in &self.patterns {
            // Only a pattern that could flip the verdict is worth matching:
            // this is Docker's short cut, and it is equivalent to letting
            // the last matching pattern win.
            if pattern.negated != excluded {
                continue;
            }
            let hit = pattern.matches(&path) || parents.iter().any(|p| pattern.matches(p));
            if hit {
                excluded = !pattern.negated;
            }
        }
        excluded
    }

    /// Whether a `!` pattern might re-include something below the directory
    /// `dir_relative_path`.
    ///
    /// A walker that finds an excluded directory wants to skip it whole
    /// (think `target/` or `.git/`), but cannot when `!target/keep` exists.
    /// The answer errs on the side of `true`: a needless descent costs time,
    /// a wrong `false` would silently drop a file the author asked for.
    /// Docker itself only descends when a negation's text literally starts
    /// with the directory, so `!**/keep` rescues files from excluded
    /// directories here but not under the docker CLI.
    pub fn may_contain_included(&self, dir_relative_path: &str) -> bool {
        let mut negations = self.patterns.iter().filter(|p| p.negated).peekable();
        let Some(dir) = normalize(dir_relative_path) else {
            // Everything is below the root.
            return negations.peek().is_some();
        };
        let parents = parents(&dir);
        let below = format!("{dir}/");
        negations.any(|pattern| {
            // A negation matching the directory or one of its parents
            // re-includes all of it, unless a later pattern excludes again;
            // that is for `is_excluded` to settle entry by entry.
            pattern.matches(&dir)
                || parents.iter().any(|p| pattern.matches(p))
                || pattern.could_match_after(&below)
        })
    }
}

/// One line of the file, compiled.
#[derive(Clone)]
struct Pattern {
    negated: bool,
    /// The cleaned pattern, kept for `Debug` output.
    text: String,
    tokens: Vec<Token>,
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bang = if self.negated { "!" } else { "" };
        write!(f, "{bang}{}", self.text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `?`: one character, never `/`.
    AnyChar,
    /// `*`: any run of characters without `/`.
    Star,
    /// `**/`, or `**` followed by more pattern: nothing, or anything that
    /// ends in `/` (Docker's `(.*/)?`).
    AnyDirs,
    /// `**` at the end: anything at all (Docker's `.*`).
    AnyRest,
    /// `[...]`: inclusive ranges (a single character is a range of one).
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Token {
    fn can_be_empty(&self) -> bool {
        matches!(self, Token::Star | Token::AnyDirs | Token::AnyRest)
    }
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        self.run(path).last().copied().unwrap_or(false)
    }

    /// Whether some continuation of `prefix` could match: the NFA still
    /// has a live state after reading it.
    fn could_match_after(&self, prefix: &str) -> bool {
        self.run(prefix).contains(&true)
    }

    /// Simulates the pattern as an NFA over `input`; returns which token
    /// positions are reachable at the end (index `tokens.len()` is
    /// "matched everything"). A set simulation rather than backtracking keeps
    /// the cost linear in the path however many `*` and `**` a pattern has.
    fn run(&self, input: &str) -> Vec<bool> {
        let n = self.tokens.len();
        let mut current = vec![false; n + 1];
        current[0] = true;
        self.close(&mut current);
        for c in input.chars() {
            let mut next = vec![false; n + 1];
            for (i, token) in self.tokens.iter().enumerate() {
                if !current[i] {
                    continue;
                }
                match token {
                    Token::Literal(l) => next[i + 1] |= c == *l,
                    Token::AnyChar => next[i + 1] |= c != '/',
                    Token::Class { negated, ranges } => {
                        let inside = ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                        next[i + 1] |= inside != *negated;
                    }
                    Token::Star => next[i] |= c != '/',
                    Token::AnyDirs => {
                        next[i] = true;
                        next[i + 1] |= c == '/';
                    }
                    Token::AnyRest => next[i] = true,
                }
            }
            self.close(&mut next);
            if !next.contains(&true) {
                return next;
            }
            current = next;
        }
        current
    }

    /// Follows the empty moves: a token that may match nothing lets the
    /// next one start where it starts. They only ever go forwards, so one
    /// pass in order is enough.
    fn close(&self, states: &mut [bool]) {
        for (i, token) in self.tokens.iter().enumerate() {
            if states[i] && token.can_be_empty() {
                states[i + 1] = true;
            }
        }
    }
}

/// Turns a cleaned pattern into tokens, rejecting what Go's `filepath.Match`
/// rejects (Docker checks every pattern with it before using it).
fn compile(pattern: &str) -> Result<Vec<Token>, &'static str> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                tokens.push(if i == chars.len() {
                    Token::AnyRest
                } else {
                    Token::AnyDirs
                });
            }
            '*' => tokens.push(Token::Star),
            '?' => tokens.push(Token::AnyChar),
            '\\' => match chars.get(i) {
                Some(&escaped) => {
                    tokens.push(Token::Literal(escaped));
                    i += 1;
                }
                None => return Err("it ends with an unescaped `\\`"),
            },
            '[' => {
                let (class, next) = compile_class(&chars, i)?;
                tokens.push(class);
                i = next;
            }
            other => tokens.push(Token::Literal(other)),
        }
    }
    // Docker matches a pattern that starts with `**` and is otherwise plain
    // text as a bare string suffix, so `**foo` takes `barfoo` and `a/barfoo`
    // too (`**/foo` is unaffected: its suffix starts with `/`).
    if pattern.starts_with("**")
        && !pattern.starts_with("**/")
        && tokens[1..].iter().all(|t| matches!(t, Token::Literal(_)))
    {
        tokens[0] = Token::AnyRest;
    }
    Ok(tokens)
}

/// Parses a class whose `[` ends just before `start`; returns it and the
/// index after its `]`.
fn compile_class(chars: &[char], start: usize) -> Result<(Token, usize), &'static str> {
    let mut i = start;
    let negated = chars.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    loop {
        match chars.get(i) {
            None => return Err(UNTERMINATED_CLASS),
            Some(']') if !ranges.is_empty() => return Ok((Token::Class { negated, ranges }, i + 1)),
            Some(']') => return Err("a character class must not be empty"),
            _ => {}
        }
        let (lo, next) = class_char(chars, i)?;
        i = next;
        let hi = if chars.get(i) == Some(&'-') {
            let (hi, next) = class_char(chars, i + 1)?;
            i = next;
            hi
        } else {
            lo
        };
        ranges.push((lo, hi));
    }
}

const UNTERMINATED_CLASS: &str = "a `[` is never closed by `]`";

/// One (possibly escaped) character of a class, as Go's `getEsc` reads it.
fn class_char(chars: &[char], i: usize) -> Result<(char, usize), &'static str> {
    match chars.get(i) {
        None => Err(UNTERMINATED_CLASS),
        Some('-') | Some(']') => Err("`-` and `]` inside a character class must be escaped with `\\`"),
        Some('\\') => match chars.get(i + 1) {
            Some(&c) => Ok((c, i + 2)),
            None => Err(UNTERMINATED_CLASS),
        },
        Some(&c) => Ok((c, i + 1)),
    }
}

/// Go's `filepath.Clean` for `/`-separated paths: collapses `//`, drops `.`
/// segments and resolves `..` where it can. Docker cleans patterns so that
/// `./x`, `x/` and `a/../x` all mean `x`.
fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !rooted {
                    // `..` above the root of a relative path has to stay;
                    // above `/` there is nothing, as in Go.
                    parts.push("..");
                }
            }
            _ => parts.push(part),
        }
    }
    let joined = parts.join("/");
    if rooted {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_owned()
    } else {
        joined
    }
}

/// A path as the matcher wants it: cleaned and relative, or `None` for the
/// context root itself.
fn normalize(path: &str) -> Option<String> {
    let cleaned = clean(path);
    let relative = cleaned.trim_start_matches('/');
    if relative.is_empty() || relative == "." {
        None
    } else {
        Some(relative.to_owned())
    }
}

/// `a`, `a/b` for `a/b/c`: the directories a pattern may match instead of
/// the path itself.
fn parents(path: &str) -> Vec<&str> {
    path.match_indices('/').map(|(at, _)| &path[..at]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignore(text: &str) -> DockerIgnore {
        DockerIgnore::parse(text).unwrap()
    }

    fn patterns(text: &str) -> Vec<String> {
        ignore(text).patterns.iter().map(|p| format!("{p:?}")).collect()
    }

    #[track_caller]
    fn check(rules: &str, excluded: &[&str], kept: &[&str]) {
        let rules = ignore(rules);
        for path in excluded {
            assert!(rules.is_excluded(path), "{path} should be excluded by {rules:?}");
        }
        for path in kept {
            assert!(!rules.is_excluded(path), "{path} should be kept by {rules:?}");
        }
    }

    #[test]
    fn comments_blank_lines_and_whitespace() {
        let text = "\u{feff}# a comment\n\n   \n  *.log  \r\n\t# not a comment\n! /keep\n";
        assert_eq!(patterns(text), ["*.log", "# not a comment", "!keep"]);
    }

    #[test]
    fn empty_excludes_nothing() {
        let rules = DockerIgnore::empty();
        assert!(!rules.is_excluded("a"));
        assert!(!rules.is_excluded("a/b/c"));
        assert!(!rules.may_contain_included("a"));
        assert!(!ignore("# only a comment\n").is_excluded("x"));
    }

    #[test]
    fn cleaning() {
        assert_eq!(
            patterns("/abs\n./x\na/../b\nc//d/\n../up\n!/neg/./x\ne/f/..\n"),
            ["abs", "x", "b", "c/d", "../up", "!neg/x", "e"]
        );
        assert_eq!(clean("/../a"), "/a");
        assert_eq!(clean("a/b/../../.."), "..");
        assert_eq!(clean(""), ".");
    }

    #[test]
    fn star_stays_in_one_directory() {
        check("*.log", &["x.log", ".log", "x.log/inner"], &["a/x.log", "x.logs", "log"]);
    }

    #[test]
    fn leading_slash_and_dot_slash() {
        check("/build", &["build", "build/x"], &["a/build", "builder"]);
        check("./x", &["x", "./x", "x/y"], &["a/x"]);
        check("a/../b", &["b", "b/c"], &["a", "a/b"]);
    }

    #[test]
    fn trailing_slash_matches_the_directory() {
        check("build/", &["build", "build/x/y"], &["src/build", "build.rs"]);
    }

    #[test]
    fn directories_take_their_contents() {
        check("foo", &["foo", "foo/bar", "foo/bar/baz"], &["foobar", "a/foo", "fo"]);
        check("a/*", &["a/b", "a/b/c"], &["a", "b/a/c"]);
    }

    #[test]
    fn double_star_at_the_start() {
        check(
            "**/*.pyc",
            &["m.pyc", "a/m.pyc", "a/b/c/m.pyc"],
            &["m.pyco", "a/m.py"],
        );
        check(
            "**/__pycache__",
            &["__pycache__", "a/__pycache__", "a/b/__pycache__/m.pyc"],
            &["a/x__pycache__", "__pycache__x"],
        );
    }

    #[test]
    fn double_star_in_the_middle() {
        check("a/**/b", &["a/b", "a/x/b", "a/x/y/b", "a/x/b/c"], &["a/xb", "b", "x/a/b"]);
        check("a/**/*.txt", &["a/t.txt", "a/x/y/t.txt"], &["t.txt", "b/t.txt"]);
    }

    #[test]
    fn double_star_at_the_end() {
        check("a/**", &["a/b", "a/b/c"], &["a", "ab"]);
        check("**", &["a", "a/b/c", ".dockerignore"], &[]);
    }

    #[test]
    fn double_star_without_a_slash() {
        // Docker's literal-suffix shortcut.
        check("**foo", &["foo", "barfoo", "a/barfoo"], &["foox"]);
        // With a wildcard after it, Docker's regex applies: `(.*/)?`.
        check("**foo*", &["foo", "a/foox"], &["barfoo"]);
        check("a**b", &["ab", "a/x/b"], &["axb"]);
        check("a**", &["a", "ab", "a/b/c"], &["ba"]);
    }

    #[test]
    fn question_mark_and_classes() {
        check("?.txt", &["a.txt"], &["ab.txt", ".txt", "a/b.txt"]);
        check("file[0-9].txt", &["file1.txt"], &["filea.txt", "file10.txt"]);
        check("file[^0-9].txt", &["filea.txt"], &["file1.txt"]);
        check("[ab]c", &["ac", "bc"], &["cc"]);
        // Go negates with `^` only: `!` is just a member of the class.
        check("[!a]x", &["!x", "ax"], &["bx"]);
        check("[\\]\\-]x", &["]x", "-x"], &["ax"]);
        check("[*]", &["*"], &["a"]);
    }

    #[test]
    fn escapes() {
        check("\\*.txt", &["*.txt"], &["a.txt"]);
        check("a\\?", &["a?"], &["ab"]);
        check("a.b", &["a.b"], &["axb"]);
    }

    #[test]
    fn negation_reincludes() {
        check("*.md\n!README.md", &["CHANGES.md"], &["README.md", "a/x.md"]);
        check("docs\n!docs/keep.md", &["docs", "docs/other.md"], &["docs/keep.md"]);
    }

    #[test]
    fn last_match_wins() {
        check("!README.md\n*.md", &["README.md", "x.md"], &[]);
        check("*.md\n!README.md\nREADME.md", &["README.md"], &[]);
        check("*.md\n!*.md\n", &[], &["x.md"]);
        check("a\n!a/b\na/b/c", &["a/x", "a/b/c", "a/b/c/d"], &["a/b", "a/b/d"]);
    }

    #[test]
    fn paths_are_normalized() {
        let rules = ignore("a/b");
        assert!(rules.is_excluded("./a/b"));
        assert!(rules.is_excluded("a//b/"));
        assert!(rules.is_excluded("/a/b"));
        // The context root itself cannot be excluded.
        assert!(!ignore("*\n**").is_excluded("."));
        assert!(!ignore("*").is_excluded(""));
    }

    #[test]
    fn bad_patterns() {
        let bad = |text: &str| DockerIgnore::parse(text).unwrap_err();
        for (text, line) in [
            ("ok\n[abc", 2),
            ("[]", 1),
            ("[^]", 1),
            ("[a-]", 1),
            ("[-a]", 1),
            ("x\\", 1),
            ("[a\\", 1),
        ] {
            match bad(text) {
                IgnoreError::BadPattern { line: at, .. } => assert_eq!(at, line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert_eq!(bad("a\n!"), IgnoreError::EmptyNegation { line: 2 });
        assert_eq!(bad("! "), IgnoreError::EmptyNegation { line: 1 });
        assert_eq!(bad("!/"), IgnoreError::EmptyNegation { line: 1 });
        let message = bad("# x\nsrc/[abc").to_string();
        assert!(message.contains("line 2") && message.contains("src/[abc"), "{message}");
    }

    #[test]
    fn descending_into_excluded_directories() {
        let rules = ignore("target/\n!keep.log\n!build/dist/*.whl\n");
        assert!(!rules.may_contain_included("target"));
        assert!(rules.may_contain_included("build"));
        assert!(rules.may_contain_included("build/dist"));
        assert!(!rules.may_contain_included("build/other"));
        assert!(rules.may_contain_included(""));

        let anywhere = ignore("target\n!**/keep");
        assert!(anywhere.may_contain_included("target"));
        assert!(anywhere.may_contain_included("target/deep/er"));

        // A negation matching a parent covers everything below it.
        let parent = ignore("!a\na/b");
        assert!(parent.may_contain_included("a/b"));

        // No negations: excluded directories can always be skipped.
        let plain = ignore("target\n*.log");
        assert!(!plain.may_contain_included("target"));
        assert!(!plain.may_contain_included(""));
    }
}

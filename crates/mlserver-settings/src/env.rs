//! Where `MLSERVER_*` values come from: the process environment and a `.env`
//! file, kept apart because the process wins over `.env` (pydantic-settings'
//! order) and because tests must be able to inject both without touching the
//! real process environment.

use std::collections::HashMap;
use std::path::Path;

use tracing::{debug, warn};

/// Which of the two environment sources a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvOrigin {
    /// A real environment variable of the process.
    Process,
    /// A `KEY=VALUE` line of the `.env` file.
    DotEnv,
}

/// A snapshot of environment variables plus the `.env` file.
///
/// Names are case-insensitive, as in MLServer (`mlserver_http_port` works).
/// Build one with [`EnvSource::from_process`] in a binary, or with
/// [`EnvSource::empty`] plus [`EnvSource::with_var`] / [`EnvSource::with_dotenv`]
/// in tests.
#[derive(Debug, Clone, Default)]
pub struct EnvSource {
    /// Upper-cased name -> value.
    process: HashMap<String, String>,
    /// Upper-cased name -> value, from `.env`.
    dotenv: HashMap<String, String>,
}

impl EnvSource {
    /// No variables at all: settings come from files and defaults only.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The process environment plus `./.env` (relative to the working
    /// directory, as pydantic-settings reads it). A missing `.env` is normal;
    /// an unreadable one is logged and skipped. Non-UTF-8 variables are
    /// skipped since no MLServer setting can hold them.
    pub fn from_process() -> Self {
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        let env = Self::from_vars(vars);
        let path = Path::new(".env");
        match std::fs::read_to_string(path) {
            Ok(text) => {
                debug!("reading environment defaults from {}", path.display());
                env.with_dotenv(&text)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => env,
            Err(e) => {
                warn!("ignoring {}: {e}", path.display());
                env
            }
        }
    }

    /// Process-level variables from any `(name, value)` pairs.
    pub fn from_vars<I, K, V>(vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        vars.into_iter()
            .fold(Self::empty(), |env, (k, v)| env.with_var(k, v))
    }

    /// Adds (or replaces) one process-level variable.
    pub fn with_var(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.process
            .insert(name.into().to_uppercase(), value.into());
        self
    }

    /// Adds the variables of a `.env` file's contents (lower precedence than
    /// process variables). See [`parse_dotenv`] for the accepted syntax.
    pub fn with_dotenv(mut self, text: &str) -> Self {
        for (k, v) in parse_dotenv(text, |name| self.process.get(&name.to_uppercase()).cloned()) {
            self.dotenv.insert(k.to_uppercase(), v);
        }
        self
    }

    /// The effective value of `name`: the process variable if set, else the
    /// `.env` one.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_from(name, EnvOrigin::Process)
            .or_else(|| self.get_from(name, EnvOrigin::DotEnv))
    }

    /// The value of `name` in one of the two sources only.
    pub fn get_from(&self, name: &str, origin: EnvOrigin) -> Option<&str> {
        let map = match origin {
            EnvOrigin::Process => &self.process,
            EnvOrigin::DotEnv => &self.dotenv,
        };
        map.get(&name.to_uppercase()).map(String::as_str)
    }
}

/// Parses `.env` contents the way python-dotenv (used by pydantic-settings)
/// does for the common cases: `KEY=VALUE` lines, optional `export `, blank
/// lines and `#` comments, `'single'` (literal) and `"double"` (with `\n`,
/// `\t`, `\"`, `\\` escapes) quotes that may span lines, a ` #` comment after
/// an unquoted value, and `${VAR}` / `${VAR:-default}` expansion in unquoted
/// and double-quoted values (earlier `.env` keys first, then `lookup`).
/// Lines without `=` are ignored, as python-dotenv gives them no value.
pub fn parse_dotenv(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (line_end, next) = match rest.find('\n') {
            Some(i) => (i, i + 1),
            None => (rest.len(), rest.len()),
        };
        let line = rest[..line_end].trim_start();
        let line = line
            .strip_prefix("export ")
            .map(str::trim_start)
            .unwrap_or(line);
        if line.is_empty() || line.starts_with('#') {
            rest = &rest[next..];
            continue;
        }
        let Some(eq) = line.find('=') else {
            rest = &rest[next..];
            continue;
        };
        let key = line[..eq].trim().to_owned();
        let after = line[eq + 1..].trim_start();
        // Offset of `after` within `rest`, so quoted values can run past the
        // end of this line.
        let after_off = after.as_ptr() as usize - rest.as_ptr() as usize;
        let (value, consumed) = match after.chars().next() {
            Some(q @ ('\'' | '"')) => match scan_quoted(&rest[after_off + 1..], q) {
                Some((raw, used)) => {
                    let value = if q == '"' {
                        expand(&raw, &out, &lookup)
                    } else {
                        raw
                    };
                    // Skip whatever follows the closing quote on its line.
                    let end = after_off + 1 + used;
                    let skip = rest[end..].find('\n').map_or(rest.len(), |i| end + i + 1);
                    (value, skip)
                }
                // Unterminated quote: take the line literally.
                None => (after.trim_end().to_owned(), next),
            },
            _ => {
                let value = strip_inline_comment(&rest[after_off..line_end]).trim_end();
                (expand(value, &out, &lookup), next)
            }
        };
        if !key.is_empty() {
            out.retain(|(k, _)| k != &key);
            out.push((key, value));
        }
        rest = &rest[consumed.min(rest.len())..];
    }
    out
}

/// Reads a quoted value up to the closing `quote`; returns the value and how
/// many bytes were used, including the closing quote.
fn scan_quoted(s: &str, quote: char) -> Option<(String, usize)> {
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == quote {
            return Some((value, i + 1));
        }
        if c == '\\' && quote == '"' {
            let (_, e) = chars.next()?;
            value.push(match e {
                'n' => '\n',
                't' => '\t',
                'r' => '\r',
                other => other,
            });
        } else if c == '\\' && quote == '\'' && s[i + 1..].starts_with('\'') {
            chars.next();
            value.push('\'');
        } else {
            value.push(c);
        }
    }
    None
}

/// Cuts a `#` comment that follows whitespace (`KEY=value # note`).
fn strip_inline_comment(value: &str) -> &str {
    let bytes = value.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'#' && i > 0 && bytes[i - 1].is_ascii_whitespace() {
            return &value[..i];
        }
    }
    value
}

/// Expands `${NAME}` and `${NAME:-default}`.
fn expand(
    value: &str,
    earlier: &[(String, String)],
    lookup: &impl Fn(&str) -> Option<String>,
) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        out.push_str(&rest[..start]);
        let inner = &rest[start + 2..start + len];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, d),
            None => (inner, ""),
        };
        let found = earlier
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone());
        out.push_str(
            &found
                .or_else(|| lookup(name))
                .unwrap_or_else(|| default.to_owned()),
        );
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}

/// `$VAR` and `${VAR}` from the process environment, as Python's
/// `os.path.expandvars` (and so MLServer, for `environment_path`) expands
/// them: unset variables stay as written.
pub fn expand_vars(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], &braced[end + 1..]),
                None => ("", after),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        match std::env::var(name) {
            Ok(value) if !name.is_empty() => out.push_str(&value),
            _ => {
                out.push('$');
                out.push_str(&after[..after.len() - tail.len()]);
            }
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_expand_like_the_shell() {
        std::env::set_var("MLSERVER_RS_TEST_ENV", "/envs");
        assert_eq!(expand_vars("$MLSERVER_RS_TEST_ENV/a"), "/envs/a");
        assert_eq!(expand_vars("${MLSERVER_RS_TEST_ENV}x"), "/envsx");
        assert_eq!(expand_vars("/no/vars"), "/no/vars");
        assert_eq!(
            expand_vars("$NOT_SET_ANYWHERE_X/a"),
            "$NOT_SET_ANYWHERE_X/a"
        );
    }

    fn parse(text: &str) -> Vec<(String, String)> {
        parse_dotenv(text, |n| (n == "HOME").then(|| "/home/me".to_owned()))
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn dotenv_syntax() {
        let text = "# comment\n\nA=1\nexport B = two words # note\nC='lit ${HOME} # x'\nD=\"a\\nb\"\nE=\nNOEQ\nF=x#y\n";
        assert_eq!(
            parse(text),
            pairs(&[
                ("A", "1"),
                ("B", "two words"),
                ("C", "lit ${HOME} # x"),
                ("D", "a\nb"),
                ("E", ""),
                ("F", "x#y"),
            ])
        );
    }

    #[test]
    fn dotenv_multiline_and_expansion() {
        let text = "J='{\n  \"a\": 1\n}'\nX=${HOME}/m\nY=\"${X}:${NOPE:-dflt}\"\nZ=${NOPE}\n";
        assert_eq!(
            parse(text),
            pairs(&[
                ("J", "{\n  \"a\": 1\n}"),
                ("X", "/home/me/m"),
                ("Y", "/home/me/m:dflt"),
                ("Z", "")
            ])
        );
    }

    #[test]
    fn dotenv_later_keys_win_and_crlf_is_trimmed() {
        assert_eq!(parse("A=1\r\nA=2\r\n"), pairs(&[("A", "2")]));
    }

    #[test]
    fn process_beats_dotenv_and_names_are_case_insensitive() {
        let env = EnvSource::empty()
            .with_var("mlserver_http_port", "9000")
            .with_dotenv("MLSERVER_HTTP_PORT=1\nmlserver_grpc_port=2\n");
        assert_eq!(env.get("MLSERVER_HTTP_PORT"), Some("9000"));
        assert_eq!(
            env.get_from("MLSERVER_HTTP_PORT", EnvOrigin::DotEnv),
            Some("1")
        );
        assert_eq!(env.get("MLSERVER_GRPC_PORT"), Some("2"));
        assert_eq!(env.get("MLSERVER_NOPE"), None);
    }

    #[test]
    fn dotenv_expands_process_variables() {
        let env = EnvSource::empty()
            .with_var("BASE", "/data")
            .with_dotenv("MLSERVER_MODEL_URI=${BASE}/m");
        assert_eq!(env.get("MLSERVER_MODEL_URI"), Some("/data/m"));
    }
}

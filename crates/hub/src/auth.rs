//! Who may connect: a shared token, and/or a token file with one token per client name (so
//! one client can be revoked by deleting its line). Tokens are compared in constant time and
//! never logged. When any token is configured, the web side asks for one too.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use thiserror::Error;
use tracing::{info, warn};

use crate::registry::lock;

/// A token file that cannot be used.
#[derive(Debug, Error)]
pub enum AuthError {
    /// Unreadable.
    #[error("cannot read token file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A line that is not `name token`.
    #[error("token file {path}, line {line}: expected `NAME TOKEN` (or `NAME:TOKEN`)")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
}

/// Compares without an early exit, so timing does not reveal how much of a guess was right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(std::hint::black_box(x ^ y));
    }
    diff == 0
}

/// Parses `NAME TOKEN` / `NAME:TOKEN` lines; `#` starts a comment.
pub fn parse_token_file(path: &Path, text: &str) -> Result<HashMap<String, String>, AuthError> {
    let mut tokens = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (name, token) = line
            .split_once(char::is_whitespace)
            .or_else(|| line.split_once(':'))
            .map(|(n, t)| (n.trim(), t.trim()))
            .filter(|(n, t)| !n.is_empty() && !t.is_empty())
            .ok_or_else(|| AuthError::Syntax {
                path: path.to_owned(),
                line: i + 1,
            })?;
        tokens.insert(name.to_owned(), token.to_owned());
    }
    Ok(tokens)
}

struct FileCache {
    modified: Option<SystemTime>,
    tokens: HashMap<String, String>,
}

/// The hub's authentication settings.
pub struct Auth {
    token: Option<String>,
    file: Option<PathBuf>,
    cache: Mutex<FileCache>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a token.
        f.debug_struct("Auth")
            .field("token", &self.token.as_ref().map(|_| "…"))
            .field("file", &self.file)
            .finish()
    }
}

impl Default for Auth {
    fn default() -> Self {
        Self::open()
    }
}

impl Auth {
    /// No authentication: everyone may connect.
    pub fn open() -> Self {
        Self {
            token: None,
            file: None,
            cache: Mutex::new(FileCache {
                modified: None,
                tokens: HashMap::new(),
            }),
        }
    }

    /// A shared token and/or a token file (read now, and again whenever it changes).
    pub fn new(token: Option<String>, file: Option<PathBuf>) -> Result<Self, AuthError> {
        let auth = Self {
            token: token.filter(|t| !t.is_empty()),
            file,
            cache: Mutex::new(FileCache {
                modified: None,
                tokens: HashMap::new(),
            }),
        };
        auth.reload_if_changed()?;
        Ok(auth)
    }

    /// Whether any token is required.
    pub fn is_enabled(&self) -> bool {
        self.token.is_some() || self.file.is_some()
    }

    fn reload_if_changed(&self) -> Result<(), AuthError> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let read_err = |source| AuthError::Read {
            path: path.clone(),
            source,
        };
        let modified = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .map_err(read_err)?;
        let mut cache = lock(&self.cache);
        if cache.modified == Some(modified) {
            return Ok(());
        }
        let text = std::fs::read_to_string(path).map_err(read_err)?;
        cache.tokens = parse_token_file(path, &text)?;
        cache.modified = Some(modified);
        info!(
            "token file {} loaded: {} client names",
            path.display(),
            cache.tokens.len()
        );
        Ok(())
    }

    /// Checks a publisher's token; `Err` says why, without repeating the token.
    pub fn check_client(&self, name: &str, token: &str) -> Result<(), &'static str> {
        if !self.is_enabled() {
            return Ok(());
        }
        if let Err(e) = self.reload_if_changed() {
            // Keep the last good file: a half-written edit must not lock everyone out.
            warn!("{e}; keeping the tokens loaded before");
        }
        if token.is_empty() {
            return Err("a token is required (--token or VIDCAST_TOKEN)");
        }
        if let Some(expected) = lock(&self.cache).tokens.get(name) {
            return if constant_time_eq(expected.as_bytes(), token.as_bytes()) {
                Ok(())
            } else {
                Err("wrong token for this client name")
            };
        }
        match &self.token {
            Some(shared) if constant_time_eq(shared.as_bytes(), token.as_bytes()) => Ok(()),
            Some(_) => Err("wrong token"),
            None => Err("this client name has no token on the hub (revoked or unknown)"),
        }
    }

    /// Whether a web request's token opens the wall, API and metrics: the shared token or any
    /// client's token.
    pub fn check_web(&self, token: &str) -> bool {
        if !self.is_enabled() {
            return true;
        }
        let _ = self.reload_if_changed();
        let shared_ok = self
            .token
            .as_ref()
            .is_some_and(|t| constant_time_eq(t.as_bytes(), token.as_bytes()));
        let file_ok = lock(&self.cache).tokens.values().fold(false, |ok, t| {
            ok | constant_time_eq(t.as_bytes(), token.as_bytes())
        });
        !token.is_empty() && (shared_ok || file_ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn token_file_parses_both_forms_and_reports_bad_lines() {
        let p = Path::new("tokens");
        let t = parse_token_file(p, "# cameras\ncam-1 abc\ncam-2:def  # door\n\n").unwrap();
        assert_eq!(t.get("cam-1").map(String::as_str), Some("abc"));
        assert_eq!(t.get("cam-2").map(String::as_str), Some("def"));
        assert!(matches!(
            parse_token_file(p, "ok tok\njustone\n"),
            Err(AuthError::Syntax { line: 2, .. })
        ));
    }

    #[test]
    fn per_client_tokens_can_be_revoked_by_editing_the_file() {
        let dir = std::env::temp_dir().join(format!("vidcast-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokens");
        std::fs::write(&path, "cam-1 one\ncam-2 two\n").unwrap();
        let auth = Auth::new(None, Some(path.clone())).unwrap();
        assert_eq!(auth.check_client("cam-1", "one"), Ok(()));
        assert!(auth.check_client("cam-1", "two").is_err());
        assert!(auth.check_client("cam-3", "one").is_err());
        assert!(auth.check_client("cam-1", "").is_err());
        assert!(auth.check_web("two") && !auth.check_web("nope") && !auth.check_web(""));
        // Revoke cam-2 (mtime must move for the reload to notice).
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, "cam-1 one\n").unwrap();
        let later = SystemTime::now() + std::time::Duration::from_secs(2);
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(later).unwrap();
        assert!(auth.check_client("cam-2", "two").is_err());
        assert!(!auth.check_web("two"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_shared_token_admits_any_name() {
        let auth = Auth::new(Some("s3cret".into()), None).unwrap();
        assert_eq!(auth.check_client("anyone", "s3cret"), Ok(()));
        assert_eq!(auth.check_client("anyone", "guess"), Err("wrong token"));
        assert!(!Auth::open().is_enabled() && Auth::open().check_web(""));
    }
}

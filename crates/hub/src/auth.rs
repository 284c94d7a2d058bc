//! Who may do what. A shared token (`--token`) may do everything; a token file holds one line
//! per token, `NAME TOKEN [ROLES]`, where ROLES is a comma list of `publish` (as NAME only: the
//! name belongs to its token), `view` (the wall, the API's reads, MJPEG, metrics, native
//! viewers) and `admin` (API writes: recording, restream), or `all`; a line without roles may
//! only publish. Tokens are compared in constant time and never logged. The file is re-read
//! when it changes; a right taken away closes the sessions that used it (`until_revoked`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use thiserror::Error;
use tokio::sync::watch;
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
    /// A line that is not `NAME TOKEN [ROLES]`.
    #[error("token file {path}, line {line}: expected `NAME TOKEN [ROLES]` (or `NAME:TOKEN`), ROLES a comma list of publish, view, admin, all")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Roles {
    /// Publish under the line's name (the shared token: under any name no line owns).
    pub publish: bool,
    /// Watch: the wall, MJPEG, native viewers, the API's reads and metrics.
    pub view: bool,
    /// Change things through the API: recording on/off, restream targets.
    pub admin: bool,
}

impl Roles {
    /// Every right: what the shared `--token` gives.
    pub const ALL: Roles = Roles {
        publish: true,
        view: true,
        admin: true,
    };

    fn parse(text: &str) -> Option<Roles> {
        let mut roles = Roles::default();
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word.to_ascii_lowercase().as_str() {
                "publish" => roles.publish = true,
                "view" => roles.view = true,
                "admin" => roles.admin = true,
                "all" => roles = Roles::ALL,
                _ => return None,
            }
        }
        Some(roles)
    }
}

/// A right a session holds and can lose when the token file changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Right {
    /// Publishing as this name.
    Publish(String),
    /// Watching.
    View,
    /// API writes.
    Admin,
}

/// One line of the token file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenLine {
    /// The name the line is for (a publisher's stream name, or a label for a viewer).
    pub name: String,
    /// The secret.
    pub token: String,
    /// What it may do.
    pub roles: Roles,
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

/// Parses `NAME TOKEN [ROLES]` / `NAME:TOKEN` lines; `#` starts a comment.
pub fn parse_token_file(path: &Path, text: &str) -> Result<Vec<TokenLine>, AuthError> {
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let syntax = || AuthError::Syntax {
            path: path.to_owned(),
            line: i + 1,
        };
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (name, token, roles) = match fields.as_slice() {
            [one] => {
                let (n, t) = one.split_once(':').ok_or_else(syntax)?;
                (
                    n,
                    t,
                    Roles {
                        publish: true,
                        ..Roles::default()
                    },
                )
            }
            [n, t] => (
                *n,
                *t,
                Roles {
                    publish: true,
                    ..Roles::default()
                },
            ),
            [n, t, r] => (*n, *t, Roles::parse(r).ok_or_else(syntax)?),
            _ => return Err(syntax()),
        };
        if name.is_empty() || token.is_empty() {
            return Err(syntax());
        }
        lines.push(TokenLine {
            name: name.to_owned(),
            token: token.to_owned(),
            roles,
        });
    }
    Ok(lines)
}

struct FileCache {
    modified: Option<SystemTime>,
    lines: Vec<TokenLine>,
}

/// The hub's authentication settings.
pub struct Auth {
    token: Option<String>,
    file: Option<PathBuf>,
    cache: Mutex<FileCache>,
    /// Bumped whenever the token file is re-read: sessions check whether they keep their right.
    generation: watch::Sender<u64>,
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
                lines: Vec::new(),
            }),
            generation: watch::Sender::new(0),
        }
    }

    /// A shared token and/or a token file (read now, and again whenever it changes).
    pub fn new(token: Option<String>, file: Option<PathBuf>) -> Result<Self, AuthError> {
        let auth = Self {
            token: token.filter(|t| !t.is_empty()),
            file,
            ..Self::open()
        };
        auth.reload_if_changed()?;
        Ok(auth)
    }

    /// Whether any token is required.
    pub fn is_enabled(&self) -> bool {
        self.token.is_some() || self.file.is_some()
    }

    /// Whether there is a token file to watch (see [`Auth::reload_if_changed`]).
    pub fn has_file(&self) -> bool {
        self.file.is_some()
    }

    /// Re-reads the token file if it changed; sessions whose right it took away are told
    /// (see [`Auth::until_revoked`]). The hub calls this a few times a second.
    pub fn reload_if_changed(&self) -> Result<(), AuthError> {
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
        let lines = parse_token_file(path, &text)?;
        let first = cache.modified.is_none();
        cache.lines = lines;
        cache.modified = Some(modified);
        let count = cache.lines.len();
        drop(cache);
        info!(
            "token file {} {}: {count} tokens",
            path.display(),
            if first { "loaded" } else { "re-read" }
        );
        self.generation.send_modify(|g| *g = g.wrapping_add(1));
        Ok(())
    }

    fn refresh(&self) {
        if let Err(e) = self.reload_if_changed() {
            // Keep the last good file: a half-written edit must not lock everyone out.
            warn!("{e}; keeping the tokens loaded before");
        }
    }

    /// The file line whose token this is, if any.
    fn line_of(&self, token: &str) -> Option<TokenLine> {
        // Every line is compared, so timing does not tell which matched.
        lock(&self.cache).lines.iter().fold(None, |found, line| {
            let eq = constant_time_eq(line.token.as_bytes(), token.as_bytes());
            if eq && found.is_none() {
                Some(line.clone())
            } else {
                found
            }
        })
    }

    fn is_shared(&self, token: &str) -> bool {
        self.token
            .as_ref()
            .is_some_and(|t| constant_time_eq(t.as_bytes(), token.as_bytes()))
    }

    /// Whether `token` holds `right` now (without re-reading the file).
    pub fn allows(&self, token: &str, right: &Right) -> bool {
        if !self.is_enabled() {
            return true;
        }
        if token.is_empty() {
            return false;
        }
        match right {
            Right::Publish(name) => self.publish_check(name, token).is_ok(),
            Right::View => {
                self.is_shared(token) || self.line_of(token).is_some_and(|l| l.roles.view)
            }
            Right::Admin => {
                self.is_shared(token) || self.line_of(token).is_some_and(|l| l.roles.admin)
            }
        }
    }

    fn publish_check(&self, name: &str, token: &str) -> Result<(), &'static str> {
        let owner = lock(&self.cache)
            .lines
            .iter()
            .find(|l| l.roles.publish && l.name == name)
            .cloned();
        if let Some(owner) = owner {
            // A name in the file belongs to its line's token, whatever else is configured.
            return if constant_time_eq(owner.token.as_bytes(), token.as_bytes()) {
                Ok(())
            } else {
                Err("wrong token for this client name")
            };
        }
        if self.is_shared(token) {
            return Ok(());
        }
        match self.line_of(token) {
            Some(line) if line.roles.publish => {
                Err("this token publishes under another name (its line in the token file)")
            }
            Some(_) => Err("this token may not publish (no publish role in the token file)"),
            None if self.token.is_some() => Err("wrong token"),
            None => Err("this client name has no token on the hub (revoked or unknown)"),
        }
    }

    /// Checks a publisher's token; `Err` says why, without repeating the token.
    pub fn check_client(&self, name: &str, token: &str) -> Result<(), &'static str> {
        if !self.is_enabled() {
            return Ok(());
        }
        self.refresh();
        if token.is_empty() {
            return Err("a token is required (--token or VIDCAST_TOKEN)");
        }
        self.publish_check(name, token)
    }

    /// Whether a token may watch: the wall, MJPEG, native viewers, the API's reads, metrics.
    pub fn check_web(&self, token: &str) -> bool {
        self.refresh();
        self.allows(token, &Right::View)
    }

    /// Whether a token may change things through the API (recording, restream targets).
    pub fn check_admin(&self, token: &str) -> bool {
        self.refresh();
        self.allows(token, &Right::Admin)
    }

    /// Completes when the token file changes so that `token` no longer holds `right` (never,
    /// without a token file: the shared token cannot change while the hub runs).
    pub async fn until_revoked(&self, token: &str, right: &Right) {
        if !self.has_file() {
            return std::future::pending().await;
        }
        let mut generations = self.generation.subscribe();
        loop {
            if !self.allows(token, right) {
                return;
            }
            if generations.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }
}

/// Re-reads the token file a few times a second, so a revoked token is cut within a second
/// of the file changing. Runs until the hub stops.
pub(crate) async fn watch_file(auth: std::sync::Arc<Auth>, mut stop: watch::Receiver<bool>) {
    if !auth.has_file() {
        return;
    }
    let mut ticker = tokio::time::interval(std::time::Duration::from_millis(250));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = ticker.tick() => auth.refresh(),
            _ = stop.wait_for(|&s| s) => return,
        }
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
        let t = parse_token_file(
            p,
            "# cameras\ncam-1 abc\ncam-2:def  # door\nwall xyz view,admin\n",
        )
        .unwrap();
        assert_eq!((t[0].name.as_str(), t[0].token.as_str()), ("cam-1", "abc"));
        assert_eq!((t[1].name.as_str(), t[1].token.as_str()), ("cam-2", "def"));
        assert_eq!(
            t[0].roles,
            Roles {
                publish: true,
                ..Roles::default()
            }
        );
        assert_eq!(
            t[2].roles,
            Roles {
                publish: false,
                view: true,
                admin: true
            }
        );
        assert!(parse_token_file(p, "a b sing\n").is_err());
        assert!(parse_token_file(p, "a b view c\n").is_err());
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
        std::fs::write(&path, "cam-1 one\ncam-2 two publish,view\n").unwrap();
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

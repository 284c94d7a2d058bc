//! Who may do what. A shared token (`--token`) may do everything; a token file holds one line
//! per token, `NAME TOKEN [ROLES]`, where ROLES is a comma list of `publish` (as NAME only: the
//! name belongs to its token), `view` (the wall, the API's reads, MJPEG, metrics, native
//! viewers) and `admin` (API writes: recording, restream), or `all`; a line without roles may
//! only publish. Tokens are compared in constant time and never logged. The file is re-read
//! when it changes; a right taken away closes the sessions that used it (`until_revoked`).
//!
//! Guessing is slowed per address: after `--max-token-failures` wrong tokens in a row, an
//! address is refused without its token being looked at for `--token-lockout`, doubling with
//! each further lockout (up to 64 times). Wrong tokens and lockouts are counted and logged at
//! most once per [`crate::access::budget::LOG_EVERY`] each. Other addresses are not affected: a right
//! token from elsewhere gets in at once.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use thiserror::Error;
use tokio::sync::watch;
use tracing::{info, warn};

use super::Access;
use crate::access::budget::{LimitHits, RateLog};
use crate::access::limits::Limits;
use crate::stream::registry::lock;

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
pub(crate) struct Roles {
    /// Publish under the line's name (the shared token: under any name no line owns).
    pub publish: bool,
    /// Watch: the wall, MJPEG, native viewers, the API's reads and metrics.
    pub view: bool,
    /// Change things through the API: recording on/off, restream targets (and view them).
    pub admin: bool,
}

impl Roles {
    /// Every right: what the shared `--token` gives.
    pub(crate) const ALL: Roles = Roles {
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
pub(crate) struct TokenLine {
    /// The name the line is for (a publisher's stream name, or a label for a viewer).
    pub name: String,
    /// The secret.
    pub token: String,
    /// What it may do.
    pub roles: Roles,
}

/// Compares without an early exit, so timing does not reveal how much of a guess was right.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(std::hint::black_box(x ^ y));
    }
    diff == 0
}

/// Parses `NAME TOKEN [ROLES]` / `NAME:TOKEN` lines; `#` starts a comment.
pub(crate) fn parse_token_file(path: &Path, text: &str) -> Result<Vec<TokenLine>, AuthError> {
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
    /// Wrong tokens per address, and lockouts.
    guesses: Mutex<Guesses>,
    /// Gates for the summary lines of wrong tokens and of refusals during a lockout.
    wrong_log: RateLog,
    locked_log: RateLog,
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
            guesses: Mutex::default(),
            wrong_log: RateLog::default(),
            locked_log: RateLog::default(),
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

    /// Whether `token` is one this hub knows (whatever its roles): refusing it for a role it
    /// lacks is not a guess, and is not slowed.
    pub fn is_known(&self, token: &str) -> bool {
        !token.is_empty() && (self.is_shared(token) || self.line_of(token).is_some())
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
            // An admin can read what it changes.
            Right::View => {
                self.is_shared(token)
                    || self
                        .line_of(token)
                        .is_some_and(|l| l.roles.view || l.roles.admin)
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

    /// The token that may watch for which `made_with` holds, if any: an RTSP Digest answer
    /// carries no token, only a hash made with one, so each such token is tried (all of
    /// them, whatever matched, so timing does not tell which).
    pub fn view_token_matching(&self, made_with: impl Fn(&str) -> bool) -> Option<String> {
        self.refresh();
        let mut candidates: Vec<String> = self.token.iter().cloned().collect();
        candidates.extend(
            lock(&self.cache)
                .lines
                .iter()
                .filter(|l| l.roles.view || l.roles.admin)
                .map(|l| l.token.clone()),
        );
        candidates.into_iter().fold(None, |found, token| {
            if made_with(&token) && found.is_none() {
                Some(token)
            } else {
                found
            }
        })
    }

    /// Whether a token may watch: the wall, MJPEG, native viewers, the API's reads, metrics.
    pub fn check_web(&self, token: &str) -> bool {
        self.refresh();
        self.allows(token, &Right::View)
    }

    /// Whether a token may publish under some name (the shared token, or a line with the
    /// publish role): what opens the publisher's page (`/publish`). The hello checks the name.
    pub fn may_publish(&self, token: &str) -> bool {
        if !self.is_enabled() {
            return true;
        }
        self.refresh();
        !token.is_empty()
            && (self.is_shared(token) || self.line_of(token).is_some_and(|l| l.roles.publish))
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

/// Addresses with wrong tokens remembered at most; past it the least recently seen is
/// forgotten (counted as `token_guess_table_full`). 4 096 entries are about 200 KiB.
pub(crate) const GUESS_TABLE_MAX: usize = 4096;
/// A lockout doubles with each further one, up to `2^MAX_LOCKOUT_DOUBLINGS` times the first.
const MAX_LOCKOUT_DOUBLINGS: u32 = 6;
/// An address quiet for this long (and not locked out) starts afresh.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

/// The address a guess is counted against: IPv6 by /64 (one machine usually holds a whole
/// /64, so counting single addresses would give it 2^64 tries), IPv4-mapped as IPv4.
pub(crate) fn guess_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(bits))
            }
        },
        v4 => v4,
    }
}

#[derive(Debug, Clone, Copy)]
struct GuessEntry {
    /// Wrong tokens since the last lockout (or since the address was first seen).
    failures: u32,
    /// Lockouts so far: each doubles the next.
    lockouts: u32,
    locked_until: Option<Instant>,
    last: Instant,
}

/// Wrong tokens per address (see [`guess_key`]): a pure table, time passed in.
#[derive(Debug, Default)]
struct Guesses {
    by_addr: HashMap<IpAddr, GuessEntry>,
}

/// What [`Guesses::failed`] did.
#[derive(Debug, Default, PartialEq)]
struct Failed {
    /// The address is now locked out for this long.
    locked_for: Option<Duration>,
    /// Another address was forgotten to make room.
    evicted: bool,
}

impl Guesses {
    /// How much longer `key` is locked out, if it is.
    fn locked(&self, key: IpAddr, now: Instant) -> Option<Duration> {
        let until = self.by_addr.get(&key)?.locked_until?;
        (until > now).then(|| until - now)
    }

    /// A wrong token from `key`: the `max_failures`th in a row locks it out.
    fn failed(
        &mut self,
        key: IpAddr,
        now: Instant,
        max_failures: u32,
        lockout: Duration,
    ) -> Failed {
        let mut result = Failed::default();
        if !self.by_addr.contains_key(&key) && self.by_addr.len() >= GUESS_TABLE_MAX {
            self.by_addr.retain(|_, e| {
                e.locked_until.is_some_and(|u| u > now)
                    || now.saturating_duration_since(e.last) < FORGET_AFTER
            });
            if self.by_addr.len() >= GUESS_TABLE_MAX {
                let oldest = self
                    .by_addr
                    .iter()
                    .min_by_key(|(_, e)| e.last)
                    .map(|(k, _)| *k);
                if let Some(oldest) = oldest {
                    self.by_addr.remove(&oldest);
                    result.evicted = true;
                }
            }
        }
        let entry = self.by_addr.entry(key).or_insert(GuessEntry {
            failures: 0,
            lockouts: 0,
            locked_until: None,
            last: now,
        });
        let lock_over = entry.locked_until.is_none_or(|u| u <= now);
        if lock_over && now.saturating_duration_since(entry.last) >= FORGET_AFTER {
            *entry = GuessEntry {
                failures: 0,
                lockouts: 0,
                locked_until: None,
                last: now,
            };
        }
        entry.last = now;
        entry.failures = entry.failures.saturating_add(1);
        if entry.failures >= max_failures.max(1) {
            let factor = 1u32 << entry.lockouts.min(MAX_LOCKOUT_DOUBLINGS);
            let wait = lockout.saturating_mul(factor);
            entry.lockouts = entry.lockouts.saturating_add(1);
            entry.failures = 0;
            entry.locked_until = Some(now + wait);
            result.locked_for = Some(wait);
        }
        result
    }

    /// A right token from `key`: it starts afresh.
    fn succeeded(&mut self, key: IpAddr) {
        self.by_addr.remove(&key);
    }
}

/// A refused token check: the reason to send back to the peer.
pub(crate) type Refusal = Cow<'static, str>;

/// Checks a publisher's token from `peer`, slowed per address (see the module doc). Logs
/// summaries itself: callers log nothing per refusal.
pub(crate) fn check_client(
    access: &Access,
    peer: SocketAddr,
    name: &str,
    token: &str,
) -> Result<(), Refusal> {
    let auth = &access.auth;
    throttled(
        access,
        peer,
        token,
        || auth.check_client(name, token),
        || format!("client \"{}\"", vidcast_proto::log_safe(name)),
        token.is_empty() || !auth.is_enabled(),
    )
}

/// Checks a web request's or viewer's token from `peer` (the shared token or any client's),
/// slowed per address like [`check_client`].
pub(crate) fn check_web(
    access: &Access,
    peer: SocketAddr,
    token: &str,
    who: &str,
) -> Result<(), Refusal> {
    let auth = &access.auth;
    let check = || {
        if auth.check_web(token) {
            Ok(())
        } else if token.is_empty() {
            Err("a token is required (--token or VIDCAST_TOKEN)")
        } else {
            Err("wrong token")
        }
    };
    throttled(
        access,
        peer,
        token,
        check,
        || who.to_owned(),
        token.is_empty() || !auth.is_enabled(),
    )
}

/// Runs `check` unless `peer`'s address is locked out; counts and logs wrong tokens. A
/// missing token (`exempt`, or no auth at all) is not a guess and is neither slowed nor
/// counted; a known token refused for a role it lacks is slowed but not counted as a guess.
fn throttled(
    access: &Access,
    peer: SocketAddr,
    token: &str,
    check: impl FnOnce() -> Result<(), &'static str>,
    who: impl FnOnce() -> String,
    exempt: bool,
) -> Result<(), Refusal> {
    let auth = &access.auth;
    if exempt {
        return check().map_err(Cow::Borrowed);
    }
    let limits: &Limits = &access.limits;
    let hits: &LimitHits = &access.hits;
    let key = guess_key(peer.ip());
    let now = Instant::now();
    let locked = lock(&auth.guesses).locked(key, now);
    if let Some(wait) = locked {
        LimitHits::hit(&hits.token_lockout);
        if let Some(more) = auth.locked_log.allow(now) {
            warn!(
                "{peer} ({}): refused without checking its token, locked out for {} s more after {} wrong tokens in a row (--max-token-failures); {more} more such refusals since the last line",
                who(),
                wait.as_secs() + 1,
                limits.max_token_failures
            );
        }
        return Err(Cow::Owned(format!(
            "too many wrong tokens from this address; try again in {} s",
            wait.as_secs() + 1
        )));
    }
    match check() {
        Ok(()) => {
            lock(&auth.guesses).succeeded(key);
            Ok(())
        }
        // A real token without the role asked for: refused, but not a guess.
        Err(why) if auth.is_known(token) => Err(Cow::Borrowed(why)),
        Err(why) => {
            LimitHits::hit(&hits.wrong_token);
            let failed = lock(&auth.guesses).failed(
                key,
                now,
                limits.max_token_failures,
                limits.token_lockout,
            );
            if failed.evicted {
                LimitHits::hit(&hits.token_guess_table_full);
            }
            if let Some(more) = auth.wrong_log.allow(now) {
                let lockout = failed
                    .locked_for
                    .map(|w| format!("; the address is locked out for {w:?}"))
                    .unwrap_or_default();
                // The token itself is never logged.
                warn!(
                    "{peer} ({}) refused: {why}{lockout}; {more} more wrong tokens since the last line",
                    who()
                );
            }
            Err(Cow::Borrowed(why))
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
    fn the_fifth_wrong_token_locks_an_address_out_for_doubling_times() {
        let mut g = Guesses::default();
        let t0 = Instant::now();
        let a = guess_key("127.0.0.2".parse().unwrap());
        let b = guess_key("127.0.0.3".parse().unwrap());
        let lockout = Duration::from_secs(10);
        for i in 0..4 {
            assert_eq!(g.failed(a, t0, 5, lockout), Failed::default(), "{i}");
            assert_eq!(g.locked(a, t0), None);
        }
        assert_eq!(g.failed(a, t0, 5, lockout).locked_for, Some(lockout));
        assert_eq!(
            g.locked(a, t0 + Duration::from_secs(3)),
            Some(Duration::from_secs(7))
        );
        assert_eq!(g.locked(b, t0), None, "another address is not touched");
        let t1 = t0 + lockout;
        assert_eq!(g.locked(a, t1), None);
        for _ in 0..4 {
            g.failed(a, t1, 5, lockout);
        }
        assert_eq!(g.failed(a, t1, 5, lockout).locked_for, Some(lockout * 2));
        // Capped at 64 times.
        let mut t = t1;
        for _ in 0..20 {
            t += lockout * 64;
            for _ in 0..5 {
                g.failed(a, t, 5, lockout);
            }
        }
        assert_eq!(g.locked(a, t), Some(lockout * 64));
        g.succeeded(a);
        assert_eq!(g.locked(a, t), None);
    }

    #[test]
    fn the_guess_table_is_bounded_and_forgets_the_quietest_first() {
        let mut g = Guesses::default();
        let t0 = Instant::now();
        let addr = |i: u32| IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        for i in 0..GUESS_TABLE_MAX as u32 {
            g.failed(
                addr(i),
                t0 + Duration::from_millis(u64::from(i)),
                5,
                Duration::from_secs(1),
            );
        }
        let later = t0 + Duration::from_secs(60);
        assert!(
            g.failed(addr(1 << 20), later, 5, Duration::from_secs(1))
                .evicted
        );
        assert_eq!(g.by_addr.len(), GUESS_TABLE_MAX);
        assert!(!g.by_addr.contains_key(&addr(0)), "the oldest went");
    }

    #[test]
    fn ipv6_guesses_count_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(guess_key(a), guess_key(b));
        assert_ne!(guess_key(a), guess_key(c));
        let mapped: IpAddr = "::ffff:127.0.0.2".parse().unwrap();
        assert_eq!(guess_key(mapped), "127.0.0.2".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_shared_token_admits_any_name() {
        let auth = Auth::new(Some("s3cret".into()), None).unwrap();
        assert_eq!(auth.check_client("anyone", "s3cret"), Ok(()));
        assert_eq!(auth.check_client("anyone", "guess"), Err("wrong token"));
        assert!(!Auth::open().is_enabled() && Auth::open().check_web(""));
    }
}

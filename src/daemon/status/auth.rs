//! HTTP basic authentication for the status page (`--status-auth-file`): the page names the people
//! who changed groups (personal data), so anything beyond loopback needs it.
//!
//! The file is htpasswd as `htpasswd -B` writes it: one `user:$2y$CC$…` line per user (bcrypt,
//! `$2a$`/`$2b$` too), blank lines and `#` comments ignored. [`Htpasswd::parse`] is pure and says
//! what is wrong at which line; the caller reads the file and exits 64 before binding anything.
//!
//! What a request costs is bounded, since bcrypt is slow on purpose and the listener is open to
//! whoever can reach it:
//! - the cost factor in the file is at most [`MAX_COST`] (refused at start otherwise);
//! - at most [`VERIFYING`] verifications run at once, on the blocking pool; a request that cannot
//!   start one within [`QUEUE_WAIT`] is answered 503 with `Retry-After`;
//! - a credential that verified is remembered for [`REMEMBER`] (as an HMAC under a key drawn at
//!   start-up, never the password), so a browser's four requests per view cost one verification.
//!   Wrong credentials are never remembered: each guess costs a full verification.
//!
//! Nothing tells a wrong user from a wrong password: an unknown user is verified against a dummy
//! hash of the same cost, user names are compared as HMACs, and every refusal is the same 401.
//! Neither the password nor the presented user name is ever logged.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The highest bcrypt cost accepted: 2^12 rounds take about 0.25 s of one core, so
/// [`VERIFYING`] at once keep an attacker to a few guesses a second and the daemon's own work
/// unharmed. `htpasswd -B` writes 5 by default.
pub const MAX_COST: u32 = 12;
/// Verifications running at once.
pub const VERIFYING: usize = 2;
/// How long a request waits for a verification slot before it is answered 503.
pub const QUEUE_WAIT: Duration = Duration::from_secs(5);
/// How long a verified credential is remembered.
pub const REMEMBER: Duration = Duration::from_secs(60);
/// Verified credentials remembered at most (the oldest is forgotten first).
pub const REMEMBERED: usize = 256;

/// `WWW-Authenticate` of every 401.
pub const CHALLENGE: &str = "Basic realm=\"sgpolicy status\", charset=\"UTF-8\"";

/// One line of the file that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{file}:{line}: {what}")]
pub struct AuthFileError {
    pub file: String,
    pub line: usize,
    pub what: String,
}

/// The users of an htpasswd file, each with its bcrypt hash.
pub struct Htpasswd {
    users: Vec<(String, String)>,
    /// A hash of the file's highest cost, verified for an unknown user so that it takes as long.
    dummy: String,
}

/// Two files are the same when they list the same users with the same hashes.
impl PartialEq for Htpasswd {
    fn eq(&self, other: &Htpasswd) -> bool {
        self.users == other.users
    }
}

impl Eq for Htpasswd {}

impl std::fmt::Debug for Htpasswd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let users: Vec<&str> = self.users.iter().map(|(u, _)| u.as_str()).collect();
        f.debug_struct("Htpasswd").field("users", &users).finish()
    }
}

/// The cost of a bcrypt hash as htpasswd writes it (`$2y$05$` + 22 salt + 31 hash characters).
fn cost_of(hash: &str) -> Result<u32, String> {
    let b = hash.as_bytes();
    let prefix_ok = b.len() == 60
        && b[0] == b'$'
        && b[1] == b'2'
        && matches!(b[2], b'a' | b'b' | b'y')
        && b[3] == b'$'
        && b[6] == b'$';
    if !prefix_ok {
        return Err(
            "expected user:$2y$CC$ followed by 53 characters, a bcrypt hash as `htpasswd -B` writes it \
             (other hash kinds, e.g. MD5 $apr1$ or SHA-1 {SHA}, are not accepted)"
                .into(),
        );
    }
    let tail_ok = b[7..]
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || *c == b'.' || *c == b'/');
    let cost = std::str::from_utf8(&b[4..6])
        .ok()
        .and_then(|c| c.parse::<u32>().ok());
    match cost {
        Some(c) if tail_ok && (4..=31).contains(&c) => Ok(c),
        _ => Err("the bcrypt hash is malformed (cost 04 to 31, then 53 of [./A-Za-z0-9])".into()),
    }
}

impl Htpasswd {
    /// Parses `text`, the contents of `file`; every problem is located. An empty file is refused
    /// (it would lock everyone out while looking configured).
    pub fn parse(file: &str, text: &str) -> Result<Htpasswd, AuthFileError> {
        let err = |line: usize, what: String| AuthFileError {
            file: file.to_string(),
            line,
            what,
        };
        let mut users: Vec<(String, String)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(err(n, "expected user:$2y$… (no ':' on this line)".into()));
            };
            if user.is_empty() || user.chars().any(char::is_control) {
                return Err(err(
                    n,
                    "the user name is empty or has control characters".into(),
                ));
            }
            let cost = cost_of(hash.trim()).map_err(|w| err(n, w))?;
            if cost > MAX_COST {
                return Err(err(
                    n,
                    format!(
                        "bcrypt cost {cost} is above {MAX_COST}: each request would take seconds of \
                         CPU; hash it again with `htpasswd -B -C {MAX_COST}` or lower"
                    ),
                ));
            }
            if users.iter().any(|(u, _)| u == user) {
                return Err(err(n, format!("user {user:?} is listed twice")));
            }
            users.push((user.to_string(), hash.trim().to_string()));
        }
        if users.is_empty() {
            return Err(err(
                text.lines().count().max(1),
                "no user: add a line with `htpasswd -B FILE USER`".into(),
            ));
        }
        let top = users
            .iter()
            .filter_map(|(_, h)| cost_of(h).ok())
            .max()
            .unwrap_or(4);
        let dummy = bcrypt::hash("not a password anyone has", top)
            .map_err(|e| err(1, format!("cannot prepare the verifier: {e}")))?;
        Ok(Htpasswd { users, dummy })
    }

    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.users.iter().map(|(u, _)| u.as_str())
    }
}

/// The verifier a listener shares: the users, the slots, the remembered credentials.
pub struct Guard {
    file: Arc<Htpasswd>,
    key: [u8; 32],
    slots: tokio::sync::Semaphore,
    remembered: Mutex<HashMap<Vec<u8>, Instant>>,
}

/// Why a request is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// No, malformed or wrong credentials: 401.
    Unauthorized,
    /// No verification slot in time: 503.
    Busy,
}

impl Guard {
    pub fn new(file: Arc<Htpasswd>) -> Guard {
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        Guard {
            file,
            key,
            slots: tokio::sync::Semaphore::new(VERIFYING),
            remembered: Mutex::new(HashMap::new()),
        }
    }

    fn mac(&self, parts: &[&[u8]]) -> Hmac<Sha256> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        for p in parts {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p);
        }
        mac
    }

    /// The stored hash for `user`, found by comparing HMACs of every name (no early exit that
    /// would time how much of a name matched); the dummy hash when nobody has that name.
    fn hash_for(&self, user: &str) -> (&str, bool) {
        let presented = self.mac(&[user.as_bytes()]).finalize().into_bytes();
        let mut found: Option<&str> = None;
        for (u, h) in &self.file.users {
            if self.mac(&[u.as_bytes()]).verify_slice(&presented).is_ok() {
                found = Some(h);
            }
        }
        match found {
            Some(h) => (h, true),
            None => (&self.file.dummy, false),
        }
    }

    fn remembers(&self, id: &[u8]) -> bool {
        let mut r = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        r.retain(|_, at| at.elapsed() < REMEMBER);
        r.contains_key(id)
    }

    fn remember(&self, id: Vec<u8>) {
        let mut r = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        if r.len() >= REMEMBERED {
            if let Some(oldest) = r.iter().min_by_key(|(_, at)| **at).map(|(k, _)| k.clone()) {
                r.remove(&oldest);
            }
        }
        r.insert(id, Instant::now());
    }

    /// Checks an `Authorization` header value.
    pub async fn check(self: &Arc<Self>, authorization: Option<&[u8]>) -> Result<(), Refused> {
        let (user, password) = basic(authorization).ok_or(Refused::Unauthorized)?;
        let id = self
            .mac(&[user.as_bytes(), password.as_bytes()])
            .finalize()
            .into_bytes()
            .to_vec();
        if self.remembers(&id) {
            return Ok(());
        }
        let _slot = tokio::time::timeout(QUEUE_WAIT, self.slots.acquire())
            .await
            .map_err(|_| Refused::Busy)?
            .map_err(|_| Refused::Busy)?;
        let me = self.clone();
        let verified = tokio::task::spawn_blocking(move || {
            let (hash, known) = me.hash_for(&user);
            let ok = bcrypt::verify(password.as_bytes(), hash).unwrap_or(false);
            ok && known
        })
        .await
        .unwrap_or(false);
        if verified {
            self.remember(id);
            Ok(())
        } else {
            Err(Refused::Unauthorized)
        }
    }
}

/// `Basic base64(user:password)` → (user, password); `None` for anything else.
fn basic(value: Option<&[u8]>) -> Option<(String, String)> {
    let v = std::str::from_utf8(value?).ok()?;
    let (scheme, encoded) = v.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The middleware: every request of the status listener passes [`Guard::check`] first.
pub async fn require(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    match guard.check(presented.as_deref()).await {
        Ok(()) => next.run(req).await,
        Err(Refused::Unauthorized) => {
            let mut r = (StatusCode::UNAUTHORIZED, "authentication required\n").into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(CHALLENGE),
            );
            r
        }
        Err(Refused::Busy) => {
            tracing::warn!(
                "status page: {VERIFYING} password checks already running for {QUEUE_WAIT:?}; \
                 answering 503 (someone may be guessing passwords)"
            );
            let mut r = (StatusCode::SERVICE_UNAVAILABLE, "busy, try again\n").into_response();
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by `htpasswd -nbB alice 'correct horse'` (Apache 2.4, cost 5).
    const ALICE: &str = "alice:$2y$05$pZg9b.aP/gynner98lGl3ubOtsbRkQ3PvpFqwkMtnXh4OpV5O0gzq";
    /// `htpasswd -nbB -C 4 bob 's3cret:with colon'`: a password may hold a colon.
    const BOB: &str = "bob:$2y$04$byrPvpVkwQmWA96E8tHk4umxIzjQyb.xi9FVUPCEBkAnc.RQRa1ma";
    /// `htpasswd -nbB -C 13 carol x`: too slow to verify per request.
    const CAROL: &str = "carol:$2y$13$vkqkiYZia4EEMG.XZvZ4bu7eOyS7p50Bv21/YDvxi9uEVJ1gxxYhS";

    fn guard() -> Arc<Guard> {
        let text = format!("# the status page\n{ALICE}\n\n{BOB}\n");
        Arc::new(Guard::new(Arc::new(
            Htpasswd::parse("users", &text).expect("valid"),
        )))
    }

    fn basic_header(user: &str, password: &str) -> Vec<u8> {
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {b}").into_bytes()
    }

    #[test]
    fn htpasswd_b_lines_parse_and_every_bad_line_is_named_by_file_and_line() {
        let ok = Htpasswd::parse("users", &format!("{ALICE}\n{BOB}\n")).expect("valid");
        assert_eq!(ok.users().collect::<Vec<_>>(), ["alice", "bob"]);
        let line_of = |text: &str| Htpasswd::parse("/etc/sgpolicy/users", text).unwrap_err();
        let e = line_of(&format!("{ALICE}\nbob:$apr1$xyz$abcdefghijklmnopqrstuv\n"));
        assert_eq!((e.file.as_str(), e.line), ("/etc/sgpolicy/users", 2));
        assert!(
            e.to_string()
                .starts_with("/etc/sgpolicy/users:2: expected user:$2y$"),
            "{e}"
        );
        let e = line_of(&format!("\n{CAROL}\n"));
        assert_eq!(e.line, 2);
        assert!(e.what.contains("cost 13 is above 12"), "{e}");
        assert_eq!(line_of("alice\n").line, 1);
        assert!(line_of(&format!("{ALICE}\n{ALICE}\n"))
            .what
            .contains("twice"));
        assert!(line_of("# nobody\n").what.contains("no user"));
        let truncated = &ALICE[..ALICE.len() - 1];
        assert_eq!(line_of(truncated).line, 1);
    }

    #[tokio::test]
    async fn the_right_credentials_pass_and_a_wrong_password_an_unknown_user_or_none_do_not() {
        let g = guard();
        assert_eq!(
            g.check(Some(&basic_header("alice", "correct horse"))).await,
            Ok(())
        );
        assert_eq!(
            g.check(Some(&basic_header("bob", "s3cret:with colon")))
                .await,
            Ok(())
        );
        for refused in [
            Some(basic_header("alice", "correct horsE")),
            Some(basic_header("alic", "correct horse")),
            Some(basic_header("bob", "correct horse")),
            Some(b"Bearer correct horse".to_vec()),
            Some(b"Basic !!!".to_vec()),
            None,
        ] {
            assert_eq!(
                g.check(refused.as_deref()).await,
                Err(Refused::Unauthorized),
                "{:?}",
                refused.map(|r| String::from_utf8_lossy(&r).to_string())
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_verified_credential_is_remembered_and_others_wait_for_a_slot_then_get_busy() {
        let g = guard();
        assert_eq!(
            g.check(Some(&basic_header("alice", "correct horse"))).await,
            Ok(())
        );
        // Every verification slot taken (guesses in flight): the remembered credential needs none,
        // anyone else waits QUEUE_WAIT and is told to come back.
        let _taken = g.slots.acquire_many(VERIFYING as u32).await.expect("slots");
        assert_eq!(
            g.check(Some(&basic_header("alice", "correct horse"))).await,
            Ok(())
        );
        assert_eq!(
            g.check(Some(&basic_header("bob", "s3cret:with colon")))
                .await,
            Err(Refused::Busy)
        );
        assert_eq!(
            g.check(Some(&basic_header("alice", "wrong"))).await,
            Err(Refused::Busy),
            "a wrong password is never remembered"
        );
    }
}

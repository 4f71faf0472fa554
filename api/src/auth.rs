//! Access control (README, "Access"): bearer tokens from a file of
//! `<name> <sha256 hex of the token>` lines.
//!
//! The server keeps only the hashes. A presented token is hashed and
//! compared with every entry in constant time, so neither the time taken nor
//! the log says how close a guess came; the log names the token's holder,
//! never the token.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use subtle::ConstantTimeEq;
use warp::Filter;
use warp::http::{HeaderValue, StatusCode};

use crate::error::ApiError;
use crate::watch::Watched;

/// The `WWW-Authenticate` challenge of every 401.
pub(crate) const CHALLENGE: &str = "Bearer";

/// Longest `Authorization` value looked at; longer ones are refused unread.
const MAX_HEADER_BYTES: usize = 4096;

/// The tokens of a tokens file, hashed.
#[derive(Debug, Default)]
pub(crate) struct TokenFile {
    entries: Vec<(Arc<str>, [u8; 32])>,
}

impl TokenFile {
    /// Parses the file's text; an error names the line.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| format!("line {}: {why}; expected `<name> <sha256 hex of the token>`", i + 1);
            let mut fields = line.split_whitespace();
            let (Some(name), Some(hash), None) = (fields.next(), fields.next(), fields.next()) else {
                return Err(bad("not two fields"));
            };
            let mut digest = [0u8; 32];
            hex::decode_to_slice(hash, &mut digest).map_err(|_| bad("the hash is not 64 hex digits"))?;
            entries.push((Arc::from(name), digest));
        }
        Ok(Self { entries })
    }

    /// Reads and parses `paths[0]` (the shape [`Watched`] loads with).
    fn read(paths: &[PathBuf]) -> Result<Self, String> {
        let path = &paths[0];
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The name of the entry whose hash is `token`'s. Every entry is
    /// compared, in constant time.
    fn holder(&self, token: &[u8]) -> Option<Arc<str>> {
        let digest = sha256(token);
        let mut found = None;
        for (name, hash) in &self.entries {
            if bool::from(hash.ct_eq(&digest)) {
                found = Some(name.clone());
            }
        }
        found
    }
}

/// Who may read the API: everyone ([`Access::open`]), or the holders of a
/// token in the tokens file.
pub struct Access {
    tokens: Option<Arc<Watched<TokenFile>>>,
}

/// Who a request is from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    /// The API is open; nobody is named.
    Anyone,
    /// The holder of this token name.
    Holder(Arc<str>),
}

impl Access {
    /// No token needed: no tokens file is configured.
    pub fn open() -> Self {
        Self { tokens: None }
    }

    /// Reads the tokens file at `path`; an error says what is wrong with it.
    pub fn tokens_file(path: &Path) -> Result<Self, String> {
        let watched = Watched::open("tokens file", vec![path.to_path_buf()], TokenFile::read)?;
        Ok(Self { tokens: Some(Arc::new(watched)) })
    }

    /// Whether no token is needed.
    pub fn is_open(&self) -> bool {
        self.tokens.is_none()
    }

    /// The watched file, for the thread that re-reads it.
    pub(crate) fn watched(&self) -> Option<Arc<Watched<TokenFile>>> {
        self.tokens.clone()
    }

    /// Checks an `Authorization` header value (raw bytes, as received).
    pub(crate) fn check(&self, authorization: Option<&[u8]>) -> Result<Caller, ApiError> {
        let Some(file) = &self.tokens else { return Ok(Caller::Anyone) };
        let Some(value) = authorization else { return Err(unauthorized("A bearer token is required.")) };
        let token = bearer_token(value).ok_or_else(|| unauthorized("Authorization must be `Bearer <token>`."))?;
        file.current().holder(token).map(Caller::Holder).ok_or_else(|| unauthorized("The token is not valid."))
    }
}

/// The token of a `Bearer <token>` value: the scheme in any case, the token
/// printable ASCII without spaces.
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    if value.len() > MAX_HEADER_BYTES {
        return None;
    }
    let (scheme, rest) = (value.get(..7)?, value.get(7..)?);
    let token = rest.trim_ascii();
    let printable = token.iter().all(|b| b.is_ascii_graphic());
    (scheme.eq_ignore_ascii_case(b"bearer ") && !token.is_empty() && printable).then_some(token)
}

/// The raw `Authorization` value, when there is one. Raw bytes, so that a
/// value that is not visible ASCII is refused as a bad token (401), not as
/// a bad header (400).
pub(crate) fn authorization() -> impl Filter<Extract = (Option<HeaderValue>,), Error = Infallible> + Clone {
    warp::header::value("authorization").map(Some).or(warp::any().map(|| None)).unify()
}

/// The 401 every refused request gets (with `WWW-Authenticate: Bearer`,
/// added where rejections are rendered).
pub(crate) fn unauthorized(message: &str) -> ApiError {
    ApiError { status: StatusCode::UNAUTHORIZED, code: "unauthorized", message: message.into(), parameter: None }
}

/// A new random token (32 bytes from the OS, hex) and its tokens-file line.
pub fn new_token(name: &str) -> Result<(String, String), String> {
    if name.is_empty() || name.contains(char::is_whitespace) || name.starts_with('#') {
        return Err(format!("token name {name:?} must be non-empty, without spaces, and not start with #"));
    }
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| "no randomness from the OS".to_string())?;
    let token = hex::encode(bytes);
    let line = format!("{name} {}", hex::encode(sha256(token.as_bytes())));
    Ok((token, line))
}

/// SHA-256 of `bytes`.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(token: &str) -> String {
        hex::encode(sha256(token.as_bytes()))
    }

    #[test]
    fn the_file_holds_names_and_hashes_with_comments() {
        let text = format!("# on-call\n\nalice {}\n  bob   {}  \n", sha("a-token"), sha("b-token"));
        let file = TokenFile::parse(&text).expect("valid");
        assert_eq!(file.holder(b"a-token").as_deref(), Some("alice"));
        assert_eq!(file.holder(b"b-token").as_deref(), Some("bob"));
        assert_eq!(file.holder(b"c-token"), None);
        assert_eq!(file.holder(sha("a-token").as_bytes()), None, "the hash itself is not a token");
    }

    #[test]
    fn a_malformed_line_is_named() {
        let err = TokenFile::parse(&format!("alice {}\nbob\n", sha("x"))).unwrap_err();
        assert!(err.starts_with("line 2: not two fields"), "{err}");
        let err = TokenFile::parse("alice abc\n").unwrap_err();
        assert!(err.contains("line 1") && err.contains("64 hex"), "{err}");
        let err = TokenFile::parse(&format!("alice {} extra\n", sha("x"))).unwrap_err();
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn only_a_well_formed_bearer_value_yields_a_token() {
        assert_eq!(bearer_token(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"bearer abc "), Some(&b"abc"[..]));
        for bad in
            [&b"Basic abc"[..], b"Bearer", b"Bearer ", b"Bearer  ", b"Bearerabc", b"Bearer a b", b"Bearer \xc3\xa9"]
        {
            assert_eq!(bearer_token(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        let huge = [b"Bearer ".as_slice(), &vec![b'a'; MAX_HEADER_BYTES]].concat();
        assert_eq!(bearer_token(&huge), None);
    }

    #[test]
    fn a_new_token_matches_its_line() {
        let (token, line) = new_token("ci").expect("a token");
        assert_eq!(token.len(), 64);
        let file = TokenFile::parse(&line).expect("the printed line parses");
        assert_eq!(file.holder(token.as_bytes()).as_deref(), Some("ci"));
        assert_ne!(new_token("ci").expect("a token").0, token, "tokens are random");
        assert!(new_token("two words").is_err() && new_token("").is_err());
    }
}

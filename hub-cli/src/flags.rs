//! Flag values: strategy choices, tags, the strategies file, the cookie.

use std::path::Path;

use bytes::Bytes;

use crate::args::Auth;
use crate::AnyError;

pub(crate) fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() && !k.contains(',') && !v.contains(',') => {
            Ok((k.trim().to_owned(), v.trim().to_owned()))
        }
        _ => Err(format!("tag {s:?}: want key=value (no commas)")),
    }
}

/// A secret kept in a file: its trimmed contents, never empty.
pub(crate) fn secret_file(f: &Path, what: &str) -> Result<String, AnyError> {
    let s = std::fs::read_to_string(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
    let secret = s.trim();
    if secret.is_empty() {
        return Err(format!("the {what} file {} is empty", f.display()).into());
    }
    Ok(secret.to_string())
}

pub(crate) fn cookie(auth: &Auth) -> Result<Bytes, AnyError> {
    if let Some(f) = &auth.cookie_file {
        return Ok(Bytes::from(secret_file(f, "cookie")?));
    }
    if let Ok(s) = std::env::var("HUB_COOKIE") {
        if s.trim().is_empty() {
            return Err("HUB_COOKIE is empty".into());
        }
        return Ok(Bytes::from(s));
    }
    tracing::warn!("no --cookie-file or HUB_COOKIE: using the development cookie");
    Ok(Bytes::from_static(b"processhub-dev-cookie"))
}

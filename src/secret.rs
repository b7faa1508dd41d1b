//! `Secret<T>`: a value (a token, a key) whose `Debug` never shows it, as cargo-credential's does;
//! it reads and writes as the bare value in JSON.

use std::fmt;

/// A secret value: the crate's one redaction type (tokens, keys, client secrets, headers).
/// `Debug` prints `Secret([redacted])`; the value is reached only through [`Secret::expose`]
/// (or [`Secret::into_inner`]), so that it shows up in logs and error text only where code asks
/// for it by name.
#[derive(Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The value itself, for where it is meant to go (an `Authorization` header, stdout).
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Secret(value)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn debug_is_redacted_and_expose_gives_the_value() {
        let s = Secret::new("ya29.planted".to_string());
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert_eq!(format!("{:?}", Some(&s)), "Some(Secret([redacted]))");
        assert_eq!(s.expose(), "ya29.planted");
        assert_eq!(s.into_inner(), "ya29.planted");
    }
}

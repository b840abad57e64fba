//! Identifier newtypes. A value of one of these types has been validated once, at the edge.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a string is not a valid name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} '{value}': {reason}")]
pub struct InvalidName {
    /// What kind of name it was meant to be ("party name", ...).
    pub kind: &'static str,
    /// The rejected input (truncated to 80 characters).
    pub value: String,
    /// What rule it breaks.
    pub reason: &'static str,
}

/// The name of an organization in a federation: `[a-z0-9][a-z0-9-]{0,62}`.
///
/// Party names appear in job files, model ids, log lines and paths, so they are kept to a
/// character set that is safe in all of them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct PartyName(String);

impl PartyName {
    /// Longest accepted party name, in bytes.
    pub const MAX_LEN: usize = 63;

    /// Validates `s` as a party name.
    pub fn new(s: &str) -> Result<Self, InvalidName> {
        Self::check(s)?;
        Ok(Self(s.to_owned()))
    }

    /// Validates `s` as a party name, keeping the string.
    pub fn from_string(s: String) -> Result<Self, InvalidName> {
        Self::check(&s)?;
        Ok(Self(s))
    }

    fn check(s: &str) -> Result<(), InvalidName> {
        let bad = |reason| InvalidName {
            kind: "party name",
            value: s.chars().take(80).collect(),
            reason,
        };
        let mut chars = s.chars();
        match chars.next() {
            None => return Err(bad("it is empty")),
            Some(c) if !(c.is_ascii_lowercase() || c.is_ascii_digit()) => {
                return Err(bad("it must start with a lowercase letter or a digit"));
            }
            Some(_) => {}
        }
        if s.len() > Self::MAX_LEN {
            return Err(bad("it is longer than 63 characters"));
        }
        if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            return Err(bad("only a-z, 0-9 and '-' are allowed"));
        }
        Ok(())
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PartyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for PartyName {
    type Err = InvalidName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl<'de> Deserialize<'de> for PartyName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::from_string(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_names() {
        for ok in ["a", "bank-a", "0", "insurer-b2", &"x".repeat(63)] {
            assert_eq!(
                PartyName::new(ok).map(|p| p.to_string()),
                Ok(ok.to_string())
            );
        }
    }

    #[test]
    fn rejects_invalid_names() {
        for bad in [
            "",
            "-a",
            "Bank",
            "bank_a",
            "bank a",
            "é",
            &"x".repeat(64),
            "a/b",
        ] {
            assert!(PartyName::new(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn deserialization_validates() {
        let bytes = rmp_serde::to_vec_named("Bad Name").expect("encode");
        assert!(rmp_serde::from_slice::<PartyName>(&bytes).is_err());
        let bytes = rmp_serde::to_vec_named("good").expect("encode");
        assert_eq!(
            rmp_serde::from_slice::<PartyName>(&bytes).ok(),
            PartyName::new("good").ok()
        );
    }
}

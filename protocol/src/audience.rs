//! The parties a record is for, shared between the records that name the same ones.
//!
//! Every record of a job names the job's participants, so in a federation of 50 parties a
//! push of one step's records carried the same 50 names 50 times, and each was decoded,
//! checked, allocated, cloned and freed on its own. An [`Audience`] is one shared list: decoding
//! compares the names on the wire with the few lists this thread decoded last and, when they
//! are the same, takes the list it already holds (the names were checked when it was first
//! decoded). A list of other names is decoded and checked as before, so a peer that sends a new
//! list every time costs what it cost before and no more.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::ids::PartyName;

/// Most parties an audience names (a longer list fails to decode).
pub const MAX_AUDIENCE: usize = 256;
/// Lists each thread remembers for decoding.
const RECENT: usize = 8;

thread_local! {
    static RECENTLY_DECODED: RefCell<Vec<Audience>> = const { RefCell::new(Vec::new()) };
}

/// An immutable, cheaply cloned list of parties (empty: every partner of the federation).
#[derive(Clone, Default, Eq)]
pub struct Audience(Arc<[PartyName]>);

impl Audience {
    /// Whether it names nobody (the record is for every partner).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Deref for Audience {
    type Target = [PartyName];
    fn deref(&self) -> &[PartyName] {
        &self.0
    }
}

impl PartialEq for Audience {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Hash for Audience {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for Audience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

impl From<Vec<PartyName>> for Audience {
    fn from(names: Vec<PartyName>) -> Self {
        Self(names.into())
    }
}

impl FromIterator<PartyName> for Audience {
    fn from_iter<I: IntoIterator<Item = PartyName>>(names: I) -> Self {
        Self(names.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a Audience {
    type Item = &'a PartyName;
    type IntoIter = std::slice::Iter<'a, PartyName>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl Serialize for Audience {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(AudienceVisitor)
    }
}

struct AudienceVisitor;

impl<'de> Visitor<'de> for AudienceVisitor {
    type Value = Audience;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a list of at most {MAX_AUDIENCE} party names")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Audience, A::Error> {
        let mut names: Vec<Name<'de>> =
            Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_AUDIENCE));
        while let Some(name) = seq.next_element::<Name<'de>>()? {
            if names.len() == MAX_AUDIENCE {
                return Err(de::Error::custom(format!(
                    "record audience of more than {MAX_AUDIENCE} parties"
                )));
            }
            names.push(name);
        }
        if names.is_empty() {
            return Ok(Audience::default());
        }
        if let Some(known) = recall(&names) {
            return Ok(known);
        }
        let audience = names
            .iter()
            .map(|n| PartyName::new(&n.0))
            .collect::<Result<Audience, _>>()
            .map_err(de::Error::custom)?;
        remember(&audience);
        Ok(audience)
    }
}

/// The list this thread decoded recently that has exactly `names`, if any.
fn recall(names: &[Name<'_>]) -> Option<Audience> {
    RECENTLY_DECODED.with_borrow(|recent| {
        recent
            .iter()
            .rev()
            .find(|a| a.len() == names.len() && a.iter().zip(names).all(|(p, n)| p.as_str() == n.0))
            .cloned()
    })
}

fn remember(audience: &Audience) {
    RECENTLY_DECODED.with_borrow_mut(|recent| {
        if recent.len() == RECENT {
            recent.remove(0);
        }
        recent.push(audience.clone());
    });
}

/// A name as it is on the wire: borrowed from the input when the decoder can, checked only
/// when it is not one of a recalled list.
struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a party name")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(s)))
            }
        }
        d.deserialize_str(NameVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<PartyName> {
        list.iter()
            .map(|n| PartyName::new(n).expect("name"))
            .collect()
    }

    fn decode(bytes: &[u8]) -> Result<Audience, rmp_serde::decode::Error> {
        rmp_serde::from_slice(bytes)
    }

    #[test]
    fn the_same_names_decode_to_one_shared_list() {
        let list = names(&["bank-a", "clinic-b", "insurer-c"]);
        let bytes = rmp_serde::to_vec(&list).expect("encode");
        let first = decode(&bytes).expect("decode");
        let second = decode(&bytes).expect("decode");
        assert_eq!(&*first, &list[..]);
        assert!(
            Arc::ptr_eq(&first.0, &second.0),
            "decoded twice, held twice"
        );
        let other = decode(&rmp_serde::to_vec(&names(&["bank-a"])).expect("encode"));
        assert_eq!(&*other.expect("decode"), &names(&["bank-a"])[..]);
    }

    #[test]
    fn a_recalled_list_is_only_taken_for_exactly_its_names() {
        let long = names(&["a", "b", "c"]);
        let first = decode(&rmp_serde::to_vec(&long).expect("encode")).expect("decode");
        for other in [
            &["a", "b"][..],
            &["a", "b", "d"],
            &["a", "b", "c", "d"],
            &["c", "b", "a"],
        ] {
            let got = decode(&rmp_serde::to_vec(other).expect("encode")).expect("decode");
            assert_eq!(&*got, &names(other)[..]);
            assert!(!Arc::ptr_eq(&first.0, &got.0));
        }
    }

    #[test]
    fn names_are_checked_and_lists_bounded() {
        assert!(decode(&rmp_serde::to_vec(&["good", "Bad Name"]).expect("encode")).is_err());
        // A bad name is refused every time, not remembered.
        assert!(decode(&rmp_serde::to_vec(&["good", "Bad Name"]).expect("encode")).is_err());
        let too_many: Vec<String> = (0..=MAX_AUDIENCE).map(|i| format!("p{i}")).collect();
        let err = decode(&rmp_serde::to_vec(&too_many).expect("encode")).expect_err("bounded");
        assert!(err.to_string().contains("more than 256"), "{err}");
        let most: Vec<String> = (0..MAX_AUDIENCE).map(|i| format!("p{i}")).collect();
        assert_eq!(
            decode(&rmp_serde::to_vec(&most).expect("encode"))
                .expect("decode")
                .len(),
            MAX_AUDIENCE
        );
        assert!(
            decode(&rmp_serde::to_vec(&Vec::<String>::new()).expect("encode"))
                .expect("decode")
                .is_empty()
        );
    }

    #[test]
    fn lists_that_are_not_borrowed_decode_too() {
        let list = names(&["bank-a", "clinic-b"]);
        let bytes = rmp_serde::to_vec(&list).expect("encode");
        let got: Audience = rmp_serde::from_read(&bytes[..]).expect("decode from a reader");
        assert_eq!(&*got, &list[..]);
    }
}

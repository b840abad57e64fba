//! [`JsonText`]: a free-form JSON document (component params, metric metadata) inside a typed
//! message.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A JSON document carried as its text.
///
/// On the control socket (MessagePack, a binary format) it is its UTF-8 text as bytes (a
/// string would be ambiguous with a JSON string value), so every message stays
/// a typed struct rather than an untyped value. In human-readable formats (`consort --json`, which
/// prints replies with serde_json) it is the document itself, so scripts read `0.05`, not
/// `"0.05"`; text that is not JSON is printed as a string.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JsonText(pub String);

impl JsonText {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The document, parsed (None when the text is not JSON).
    pub fn value(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.0).ok()
    }
}

impl From<serde_json::Value> for JsonText {
    fn from(v: serde_json::Value) -> Self {
        Self(v.to_string())
    }
}

impl Serialize for JsonText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            match self.value() {
                Some(v) => v.serialize(s),
                None => s.serialize_str(&self.0),
            }
        } else {
            s.serialize_bytes(self.0.as_bytes())
        }
    }
}

/// What a [`JsonText`] is read from: its text as bytes (MessagePack), or a JSON value (a
/// human-readable format). Decided by the data, not by `is_human_readable`, which serde does
/// not pass through internally tagged enums such as [`crate::ServerMessage`].
#[derive(Deserialize)]
#[serde(untagged)]
enum Repr {
    Value(serde_json::Value),
    Text(serde_bytes::ByteBuf),
}

impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Value(v) => Ok(Self::from(v)),
            Repr::Text(bytes) => String::from_utf8(bytes.into_vec())
                .map(Self)
                .map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_on_the_wire_a_document_in_json() {
        let t = JsonText::from(serde_json::json!({"learning_rate": 0.05, "max_iter": 1}));
        let wire = rmp_serde::to_vec_named(&t).expect("encode");
        let s: serde_bytes::ByteBuf = rmp_serde::from_slice(&wire).expect("bytes on the wire");
        assert_eq!(s.as_slice(), t.0.as_bytes());
        assert_eq!(rmp_serde::from_slice::<JsonText>(&wire).expect("decode"), t);
        // Inside the internally tagged server messages (where serde buffers the content).
        let msg = crate::ServerMessage::Response {
            id: 1,
            response: crate::Response::Metrics {
                metrics: vec![crate::MetricInfo {
                    task: "t".into(),
                    role: "guest".into(),
                    namespace: "n".into(),
                    name: "m".into(),
                    points: vec![],
                    meta: Some(t.clone()),
                }],
            },
        };
        let wire = rmp_serde::to_vec_named(&msg).expect("encode");
        assert_eq!(
            rmp_serde::from_slice::<crate::ServerMessage>(&wire).expect("decode"),
            msg
        );
        // A JSON string param stays a JSON string.
        let s: JsonText = serde_json::from_value(serde_json::json!("L2")).expect("string");
        assert_eq!(s.0, "\"L2\"");
        assert_eq!(
            serde_json::to_value(&t).expect("json"),
            serde_json::json!({"learning_rate": 0.05, "max_iter": 1})
        );
        let back: JsonText = serde_json::from_value(serde_json::json!({"max_iter": 1})).expect("v");
        assert_eq!(back.0, r#"{"max_iter":1}"#);
        assert_eq!(
            serde_json::to_value(JsonText("not json".into())).expect("json"),
            serde_json::json!("not json")
        );
    }
}

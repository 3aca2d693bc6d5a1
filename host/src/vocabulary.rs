//! Stored vocabularies as types. A status, reason or kind is stored as an exact string, and
//! renaming one would orphan stored rows, so each vocabulary is an enum whose strings are
//! written once, in its [`stored_vocabulary!`] invocation.

/// A stored word that is not one of a vocabulary's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {vocabulary} `{value}`")]
pub struct UnknownValue {
    /// Which vocabulary, as its error message names it (e.g. `delivery status`).
    pub vocabulary: &'static str,
    pub value: String,
}

/// One enum per vocabulary, with its stored strings in one place: `as_str`, `FromStr`,
/// `Display` and serde all go by them.
macro_rules! stored_vocabulary {
    (
        $(#[$meta:meta])*
        $name:ident ($vocabulary:literal) {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The string stored for it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }

            pub fn parse(text: &str) -> Result<$name, $crate::vocabulary::UnknownValue> {
                text.parse()
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::vocabulary::UnknownValue;
            fn from_str(text: &str) -> Result<$name, $crate::vocabulary::UnknownValue> {
                match text {
                    $( $text => Ok($name::$variant), )+
                    _ => Err($crate::vocabulary::UnknownValue {
                        vocabulary: $vocabulary,
                        value: text.to_string(),
                    }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.as_str()
            }
        }
    };
}

pub(crate) use stored_vocabulary;

/// What every vocabulary's unit test checks of all its values: each parses back from its
/// string, serde writes and reads that string, and no two values share one.
#[cfg(test)]
pub(crate) fn check_round_trips<T>(all: &[T])
where
    T: Copy
        + Eq
        + std::fmt::Debug
        + std::fmt::Display
        + std::str::FromStr<Err = UnknownValue>
        + serde::Serialize
        + serde::de::DeserializeOwned,
{
    let mut seen = std::collections::BTreeSet::new();
    for value in all {
        let text = value.to_string();
        let quoted = serde_json::to_string(&text).unwrap();
        assert_eq!(text.parse::<T>(), Ok(*value));
        assert_eq!(serde_json::to_string(value).unwrap(), quoted);
        assert_eq!(serde_json::from_str::<T>(&quoted).unwrap(), *value);
        assert!(seen.insert(text.clone()), "`{text}` stands for two values");
    }
}

#[cfg(test)]
mod tests {
    stored_vocabulary! {
        Sample ("sample word") {
            One => "one",
            Two => "two_words",
        }
    }

    #[test]
    fn values_go_by_their_stored_strings() {
        assert_eq!(Sample::ALL, &[Sample::One, Sample::Two]);
        assert_eq!(Sample::parse("two_words"), Ok(Sample::Two));
        assert_eq!(Sample::Two.to_string(), "two_words");
        assert_eq!(
            serde_json::to_string(&Sample::Two).unwrap(),
            "\"two_words\""
        );
        assert!(Sample::One == "one");
        assert!("one" == Sample::One);
        let err = Sample::parse("three").unwrap_err();
        assert_eq!(err.to_string(), "unknown sample word `three`");
    }
}

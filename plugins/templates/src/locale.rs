//! Locales: which translation of a template part a render request's locale picks.
//!
//! A part's translations sit beside it as `<part>.<locale>.j2` (`subject.de.j2`,
//! `subject.de-AT.j2`), the untranslated default as `<part>.j2`. For a request in `de-AT` the
//! renderer tries `de-AT`, then `de`, then the default: the "lookup" of RFC 4647 (drop the last
//! subtag until one matches; a single-letter subtag such as the `x` of a private use part goes
//! with the subtag after it). Tags compare case-insensitively and `_` counts as `-`
//! (`de_AT`, `DE-at` and `de-AT` are one tag), in the request and in file names alike.

/// A BCP 47 language tag, normalised: lower case, `-`-separated subtags of 1 to 8 ASCII
/// letters or digits, the first (the language) of letters only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locale(String);

/// Why a locale was not understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLocale {
    pub given: String,
    pub reason: &'static str,
}

impl std::fmt::Display for BadLocale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "locale {:?} {}", self.given, self.reason)
    }
}

impl Locale {
    /// Parses a tag such as `de-AT`, `de_at` or `pt-BR`.
    pub fn parse(given: &str) -> Result<Locale, BadLocale> {
        let bad = |reason| BadLocale {
            given: given.chars().take(40).collect(),
            reason,
        };
        let tag = given.trim().replace('_', "-").to_ascii_lowercase();
        if tag.is_empty() {
            return Err(bad("is blank"));
        }
        if tag.len() > 64 {
            return Err(bad("is longer than 64 characters"));
        }
        for (i, subtag) in tag.split('-').enumerate() {
            if subtag.is_empty() || subtag.len() > 8 {
                return Err(bad("has an empty subtag or one longer than 8 characters"));
            }
            if !subtag.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(bad(
                    "holds a character that is not a letter, digit, `-` or `_`",
                ));
            }
            if i == 0 && !subtag.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(bad("does not start with a language (letters only)"));
            }
        }
        Ok(Locale(tag))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tags to try, most specific first: `de-at-1996` → `de-at-1996`, `de-at`, `de`.
    pub fn fallbacks(&self) -> Vec<Locale> {
        let mut subtags: Vec<&str> = self.0.split('-').collect();
        let mut chain = Vec::with_capacity(subtags.len());
        while !subtags.is_empty() {
            chain.push(Locale(subtags.join("-")));
            subtags.pop();
            // A singleton (`x`, `u`, …) introduces the subtags after it; it never ends a tag.
            while subtags.last().is_some_and(|s| s.len() == 1) {
                subtags.pop();
            }
        }
        chain
    }
}

/// A template file name split into its part and, for a translation, its locale:
/// `subject.j2` → (`subject`, none), `subject.de-AT.j2` → (`subject`, `de-at`). `None` for a
/// file that is not a part (no `.j2` ending, an empty part, or a locale that does not parse).
pub fn split_file_name(file: &str) -> Option<(&str, Option<Locale>)> {
    let stem = file.strip_suffix(".j2")?;
    match stem.split_once('.') {
        None if !stem.is_empty() => Some((stem, None)),
        Some((part, tag)) if !part.is_empty() => Some((part, Some(Locale::parse(tag).ok()?))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(tag: &str) -> Vec<String> {
        Locale::parse(tag)
            .unwrap()
            .fallbacks()
            .into_iter()
            .map(|l| l.0)
            .collect()
    }

    #[test]
    fn region_falls_back_to_language() {
        assert_eq!(chain("de-AT"), ["de-at", "de"]);
        assert_eq!(chain("de"), ["de"]);
        assert_eq!(chain("zh-Hant-TW"), ["zh-hant-tw", "zh-hant", "zh"]);
    }

    #[test]
    fn case_and_underscore_do_not_matter() {
        assert_eq!(Locale::parse("de_AT"), Locale::parse("DE-at"));
        assert_eq!(Locale::parse(" de-AT ").unwrap().as_str(), "de-at");
    }

    #[test]
    fn a_singleton_never_ends_a_fallback() {
        assert_eq!(chain("de-x-formal"), ["de-x-formal", "de"]);
        assert_eq!(chain("en-US-u-ca-gregory").last().unwrap(), "en");
        assert!(!chain("en-US-u-ca-gregory").contains(&"en-us-u".to_string()));
    }

    #[test]
    fn malformed_locales_are_refused_with_a_reason() {
        for bad in [
            "",
            "  ",
            "de--AT",
            "../de",
            "de/AT",
            "1de",
            "de.AT",
            "abcdefghi",
        ] {
            let err = Locale::parse(bad).unwrap_err();
            assert!(!err.to_string().is_empty(), "{bad:?}");
        }
    }

    #[test]
    fn file_names_split_into_part_and_locale() {
        assert_eq!(split_file_name("subject.j2"), Some(("subject", None)));
        assert_eq!(
            split_file_name("subject.de_AT.j2"),
            Some(("subject", Some(Locale("de-at".into()))))
        );
        assert_eq!(
            split_file_name("action_label.fr.j2"),
            Some(("action_label", Some(Locale("fr".into()))))
        );
        assert_eq!(split_file_name("subject.txt"), None);
        assert_eq!(split_file_name(".j2"), None);
        assert_eq!(split_file_name("subject.d/e.j2"), None);
        assert_eq!(split_file_name("subject..j2"), None);
    }
}

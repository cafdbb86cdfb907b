//! Entity tags of news items (RFC 9110 §8.8.3), made from the item's version, and the
//! `If-Match` / `If-None-Match` lists that name them.

/// The entity tag of version `version`: a strong tag, `"v<version>"`.
#[must_use]
pub fn entity_tag(version: i64) -> String {
    format!("\"v{version}\"")
}

/// What an `If-Match` or `If-None-Match` header asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagCondition {
    /// `*`: any current version.
    Any,
    /// These versions (possibly none, when no tag in the list is one of ours).
    Versions(Vec<i64>),
}

impl TagCondition {
    /// Reads a header's list of entity tags. `strong_only` (for `If-Match`, RFC 9110 §13.1.1) leaves
    /// weak tags out, since they never match there; `If-None-Match` compares weakly. A tag this
    /// server did not make matches nothing.
    #[must_use]
    pub fn parse(header: &str, strong_only: bool) -> Self {
        if header.trim() == "*" {
            return Self::Any;
        }
        let versions = header
            .split(',')
            .map(str::trim)
            .filter_map(|tag| match tag.strip_prefix("W/") {
                Some(_) if strong_only => None,
                Some(weak) => Some(weak),
                None => Some(tag),
            })
            .filter_map(|tag| tag.strip_prefix("\"v")?.strip_suffix('"')?.parse().ok())
            .collect();
        Self::Versions(versions)
    }

    /// Whether the current version `version` satisfies the condition.
    #[must_use]
    pub fn matches(&self, version: i64) -> bool {
        match self {
            Self::Any => true,
            Self::Versions(versions) => versions.contains(&version),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_made_here_is_read_back() {
        assert_eq!(
            TagCondition::parse(&entity_tag(7), true),
            TagCondition::Versions(vec![7])
        );
    }

    #[test]
    fn lists_stars_and_weak_tags() {
        assert_eq!(TagCondition::parse(" * ", true), TagCondition::Any);
        let list = TagCondition::parse(r#""v1", W/"v2" ,"v3""#, true);
        assert_eq!(list, TagCondition::Versions(vec![1, 3]));
        let list = TagCondition::parse(r#""v1", W/"v2""#, false);
        assert!(list.matches(2));
    }

    #[test]
    fn foreign_or_malformed_tags_match_nothing() {
        for header in ["\"abc\"", "v1", "\"v\"", "\"v1", "", "\"v-1x\""] {
            assert!(!TagCondition::parse(header, true).matches(1), "{header}");
        }
    }
}

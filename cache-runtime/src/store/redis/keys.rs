//! The keys the Redis store writes, and how to recognise them.
//!
//! With prefix `P` (which has no braces) and a rendered key `K` (which has no
//! braces either: values are escaped, template text may not hold them):
//! - `P:{K}` holds the encoded entry (an envelope and the value);
//! - `P:{K}:lease` is the load lease of that entry (same hash slot, thanks to `{K}`);
//! - `P:{K}:wait` marks a lease another process waits for;
//! - `P:{}t:<tag>` and `P:{}v:<version>` are generation counters. The empty
//!   hash tag `{}` makes Redis Cluster hash the whole key, so counters spread
//!   over the slots.
//!
//! Every key of the cache begins with `P:{`, which no other prefix produces
//! (a prefix that extends `P` continues it with something other than `{`), so
//! [`own_key`] tells this cache's keys from a neighbour cache's and from the
//! application's own keys under the same text.

/// What a key of this cache is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OwnKey<'a> {
    /// An entry, with its rendered key.
    Entry(&'a [u8]),
    Lease,
    WaitMark,
    Counter,
}

/// The entry key of rendered key `key`: `P:{K}`.
pub(super) fn entry_key(prefix: &str, key: &[u8]) -> Vec<u8> {
    let mut full = Vec::with_capacity(prefix.len() + key.len() + 3);
    full.extend_from_slice(prefix.as_bytes());
    full.extend_from_slice(b":{");
    full.extend_from_slice(key);
    full.push(b'}');
    full
}

/// The lease of an entry: `P:{K}:lease`.
pub(super) fn lease_key(entry_key: &[u8]) -> Vec<u8> {
    [entry_key, b":lease"].concat()
}

/// The mark of an entry whose lease another process waits for: `P:{K}:wait`.
pub(super) fn wait_key(entry_key: &[u8]) -> Vec<u8> {
    [entry_key, b":wait"].concat()
}

/// The counter of a dependency (`t:org:7`, `v:team:3`): `P:{}t:org:7`.
pub(super) fn counter_key(prefix: &str, dependency: &str) -> String {
    format!("{prefix}:{{}}{dependency}")
}

/// A `SCAN MATCH` pattern for every key of this cache.
pub(super) fn scan_pattern(prefix: &str) -> String {
    let mut pattern = glob_escape(prefix);
    pattern.push_str(":{*");
    pattern
}

/// What `key` is, if this cache (of `prefix`) wrote it.
pub(super) fn own_key<'a>(prefix: &str, key: &'a [u8]) -> Option<OwnKey<'a>> {
    let rest = key.strip_prefix(prefix.as_bytes())?.strip_prefix(b":{")?;
    if rest.starts_with(b"}t:") || rest.starts_with(b"}v:") {
        return Some(OwnKey::Counter);
    }
    let close = rest.iter().position(|&byte| byte == b'}')?;
    let (inner, suffix) = (&rest[..close], &rest[close + 1..]);
    if inner.contains(&b'{') {
        return None;
    }
    match suffix {
        b"" => Some(OwnKey::Entry(inner)),
        b":lease" => Some(OwnKey::Lease),
        b":wait" => Some(OwnKey::WaitMark),
        _ => None,
    }
}

/// `text` with the characters special to `SCAN MATCH` escaped.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_its_lease_and_wait_mark_share_the_hash_tag() {
        let entry = entry_key("app:prod", b"user:42");
        assert_eq!(entry, b"app:prod:{user:42}");
        assert_eq!(lease_key(&entry), b"app:prod:{user:42}:lease");
        assert_eq!(wait_key(&entry), b"app:prod:{user:42}:wait");
        assert_eq!(counter_key("app:prod", "t:org:7"), "app:prod:{}t:org:7");
    }

    #[test]
    fn own_keys_are_told_from_neighbours_and_foreign_keys() {
        fn own(key: &str) -> Option<OwnKey<'_>> {
            own_key("app", key.as_bytes())
        }
        assert_eq!(own("app:{user:1}"), Some(OwnKey::Entry(b"user:1")));
        assert_eq!(own("app:{}"), Some(OwnKey::Entry(b"")));
        assert_eq!(own("app:{user:1}:lease"), Some(OwnKey::Lease));
        assert_eq!(own("app:{user:1}:wait"), Some(OwnKey::WaitMark));
        assert_eq!(own("app:{}t:org:7"), Some(OwnKey::Counter));
        assert_eq!(own("app:{}v:team:3"), Some(OwnKey::Counter));
        for foreign in [
            "app:v2:{user:1}",
            "app:v2:{}t:org:7",
            "app:sessions:42",
            "app:gen:t:org:7",
            "app:{user:1}:other",
            "app:{a{b}",
            "app:{unclosed",
            "application:{user:1}",
            "ap:{user:1}",
        ] {
            assert_eq!(own(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn the_scan_pattern_escapes_the_prefix() {
        assert_eq!(scan_pattern("a*b[1]"), "a\\*b\\[1\\]:{*");
    }
}

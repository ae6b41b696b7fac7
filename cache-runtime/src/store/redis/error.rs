//! What Redis answered, sorted into the classes that decide what happens next.

use std::fmt;

use redis::RedisError;

/// Why the cache could not do what was asked. Callers of `#[cached]` never see
/// it (the function body runs instead); [`Cache`](crate::Cache) methods return it.
///
/// | class | breaker | what happens |
/// | --- | --- | --- |
/// | [`BreakerOpen`](Self::BreakerOpen) | — | Redis was not asked |
/// | [`Timeout`](Self::Timeout), [`Connection`](Self::Connection), [`Busy`](Self::Busy), [`ReadOnly`](Self::ReadOnly), [`Moved`](Self::Moved) | counts as a failure | the body runs; invalidations are retried |
/// | [`Tls`](Self::Tls), [`NoPermission`](Self::NoPermission) | counts as a failure | a misconfiguration: logged at WARN with the fix (once a minute), shown in [`LayerStatus::problem`](crate::LayerStatus::problem); the body runs, and the breaker opens so calls stop asking until its cooldown |
/// | [`OutOfMemory`](Self::OutOfMemory) | Redis is up | nothing is stored; invalidations fall back to deletes, which Redis accepts when full |
/// | [`WrongType`](Self::WrongType) | Redis is up | a miss; the next store overwrites the key |
/// | [`Server`](Self::Server) | Redis is up | logged; the body runs |
/// | [`NotStored`](Self::NotStored) | — | a put's value was not stored; its entry was deleted |
/// | [`NotAnnounced`](Self::NotAnnounced) | — | an invalidation was applied in Redis, but its announcement to the other processes' local layers was refused; not retried, said like a misconfiguration |
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CacheError {
    /// The circuit breaker is open: Redis was not asked.
    BreakerOpen,
    /// No answer within the configured timeout.
    Timeout,
    /// The connection failed or could not be made.
    Connection(RedisError),
    /// The TLS handshake failed: a certificate was refused (the server's, for
    /// its CA or host name, or the client's), or the server does not speak TLS.
    Tls(RedisError),
    /// Redis is loading its data set, busy with a script, or asks to try again.
    Busy(RedisError),
    /// A write reached a read-only replica (after a failover, say).
    ReadOnly(RedisError),
    /// The key lives on another node (a cluster answer on a standalone client).
    Moved(RedisError),
    /// The cache's Redis user may not run the command, touch the key or use
    /// the channel (`NOPERM`), or could not authenticate (`NOAUTH`, `WRONGPASS`).
    NoPermission(RedisError),
    /// Redis is at `maxmemory` and refuses writes (`noeviction`).
    OutOfMemory(RedisError),
    /// The key holds a value of another Redis type.
    WrongType(RedisError),
    /// Any other error answer.
    Server(RedisError),
    /// An invalidation was applied in Redis, but the message telling the other
    /// processes of a two-level cache was refused (a permission on the
    /// channel): their local layers keep the entries until `local_max_age`.
    NotAnnounced(RedisError),
    /// A put was not stored: the value is larger than the cache takes, or
    /// another write or an invalidation overtook it. The entry was deleted.
    NotStored,
}

impl CacheError {
    /// Sorts an error from the Redis client into its class.
    pub(crate) fn classify(error: RedisError) -> Self {
        if error.to_string().contains(super::conn::SLOTS_BREAKER_OPEN) {
            return Self::BreakerOpen;
        }
        if error.is_timeout() {
            return Self::Timeout;
        }
        let code = error
            .clone()
            .into_server_errors()
            .and_then(|errors| errors.first().map(|(_, e)| e.code().to_owned()));
        let Some(code) = code else {
            if super::tls::fix_for(&error).is_some() {
                return Self::Tls(error);
            }
            return Self::Connection(error);
        };
        match code.as_str() {
            "OOM" => Self::OutOfMemory(error),
            "NOPERM" | "NOAUTH" | "WRONGPASS" => Self::NoPermission(error),
            "WRONGTYPE" => Self::WrongType(error),
            "READONLY" => Self::ReadOnly(error),
            "MOVED" | "ASK" | "CROSSSLOT" => Self::Moved(error),
            "LOADING" | "BUSY" | "TRYAGAIN" | "CLUSTERDOWN" | "MASTERDOWN" | "NOREPLICAS" => {
                Self::Busy(error)
            }
            _ => Self::Server(error),
        }
    }

    /// Whether Redis is not serving: counts against the circuit breaker.
    pub(crate) fn is_outage(&self) -> bool {
        matches!(
            self,
            Self::Timeout
                | Self::Connection(_)
                | Self::Tls(_)
                | Self::Busy(_)
                | Self::ReadOnly(_)
                | Self::Moved(_)
                | Self::NoPermission(_)
        )
    }

    /// This error of an invalidation's pipeline, as [`CacheError::NotAnnounced`]
    /// when every command succeeded but the announcement at `index`.
    pub(crate) fn announcement_refused_at(self, index: usize) -> Self {
        let (Self::NoPermission(error) | Self::Server(error)) = &self else { return self };
        let only_there = error
            .clone()
            .into_server_errors()
            .is_some_and(|errors| !errors.is_empty() && errors.iter().all(|(failed, _)| *failed == index));
        if only_there { Self::NotAnnounced(error.clone()) } else { self }
    }

    /// Whether an invalidation that ended with this error was applied.
    pub(crate) fn applied(&self) -> bool {
        matches!(self, Self::NotAnnounced(_))
    }

    /// What to change when this error means the cache is misconfigured.
    pub(crate) fn fix(&self) -> Option<&'static str> {
        match self {
            Self::Tls(error) => super::tls::fix_for(error),
            Self::NotAnnounced(_) => Some(
                "give the cache's Redis user its channels, for prefix P: ACL SETUSER <user> resetchannels &P:* +@pubsub \
                 (the README's Security section)",
            ),
            Self::NoPermission(_) => Some(
                "give the cache's Redis user its commands, keys and channels, for prefix P: \
                 ACL SETUSER <user> on ><password> resetkeys ~P:* resetchannels &P:* \
                 -@all +@read +@write +@scripting +@pubsub +@connection +time +info +cluster|slots \
                 +cluster|shards +cluster|nodes (the README's Security section)",
            ),
            _ => None,
        }
    }

    /// A short name of the class, for metrics labels.
    #[must_use]
    pub fn class(&self) -> &'static str {
        match self {
            Self::BreakerOpen => "breaker_open",
            Self::Timeout => "timeout",
            Self::Connection(_) => "connection",
            Self::Tls(_) => "tls",
            Self::Busy(_) => "busy",
            Self::ReadOnly(_) => "read_only",
            Self::Moved(_) => "moved",
            Self::NoPermission(_) => "no_permission",
            Self::NotAnnounced(_) => "not_announced",
            Self::OutOfMemory(_) => "out_of_memory",
            Self::WrongType(_) => "wrong_type",
            Self::Server(_) => "server",
            Self::NotStored => "not_stored",
        }
    }
}

impl fmt::Display for CacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BreakerOpen => f.write_str("Redis skipped: circuit breaker open")?,
            Self::Timeout => f.write_str("Redis did not answer in time")?,
            Self::Connection(error) => write!(f, "Redis connection failed: {error}")?,
            Self::Tls(error) => write!(f, "TLS to Redis failed: {error}")?,
            Self::Busy(error) => write!(f, "Redis is busy or loading: {error}")?,
            Self::ReadOnly(error) => write!(f, "Redis is a read-only replica: {error}")?,
            Self::Moved(error) => write!(f, "Redis redirects to another node: {error}")?,
            Self::NoPermission(error) => write!(f, "Redis refused the cache's user: {error}")?,
            Self::NotAnnounced(error) => {
                write!(f, "the invalidation was applied, but not announced to the other processes: {error}")?;
            }
            Self::OutOfMemory(error) => write!(f, "Redis is out of memory: {error}")?,
            Self::WrongType(error) => write!(f, "the Redis key holds another type: {error}")?,
            Self::Server(error) => write!(f, "Redis answered with an error: {error}")?,
            Self::NotStored => f.write_str("the value was not stored: the entry was deleted instead")?,
        }
        // A misconfiguration says what to change.
        match self.fix() {
            Some(fix) => write!(f, "; {fix}"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for CacheError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(text: &str) -> RedisError {
        let mut parser = redis::Parser::new();
        let value = parser.parse_value(format!("-{text}\r\n").as_bytes()).expect("a reply");
        value.extract_error().expect_err("an error reply")
    }

    #[test]
    fn answers_fall_into_their_classes() {
        let cases = [
            ("OOM command not allowed when used memory > 'maxmemory'.", "out_of_memory"),
            ("WRONGTYPE Operation against a key holding the wrong kind of value", "wrong_type"),
            ("READONLY You can't write against a read only replica.", "read_only"),
            ("LOADING Redis is loading the dataset in memory", "busy"),
            ("BUSY Redis is busy running a script.", "busy"),
            ("MOVED 3999 127.0.0.1:6381", "moved"),
            ("NOPERM User app has no permissions to run the 'evalsha' command", "no_permission"),
            ("WRONGPASS invalid username-password pair or user is disabled.", "no_permission"),
            ("ERR unknown command", "server"),
        ];
        for (text, class) in cases {
            let error = CacheError::classify(answer(text));
            assert_eq!(error.class(), class, "{text}");
        }
        assert!(CacheError::classify(answer("LOADING x")).is_outage());
        assert!(!CacheError::classify(answer("OOM x")).is_outage());
        assert!(!CacheError::classify(answer("WRONGTYPE x")).is_outage());
        let refused = CacheError::classify(answer("NOPERM x"));
        assert!(refused.is_outage() && refused.fix().is_some_and(|fix| fix.contains("ACL SETUSER")));
    }
}

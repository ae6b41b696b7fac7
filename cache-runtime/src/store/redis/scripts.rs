//! The Lua scripts of the Redis store. Each touches only the keys passed in
//! `KEYS`, all in one hash slot.

use redis::Script;

/// Reads a tag or version counter, creating it at the server's clock in
/// microseconds when missing, and extends its expiry to at least `ARGV[1]` ms.
const OBSERVE: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then
  local t = redis.call('TIME')
  v = string.format('%.0f', t[1] * 1000000 + t[2])
  redis.call('SET', KEYS[1], v, 'PX', ARGV[1])
elseif redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return v
";

/// Moves an existing counter to a new generation: one past its value, and at
/// least the server's clock in microseconds, so a counter deleted and created
/// again later never repeats a generation an entry saw.
const BUMP: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  local v = redis.call('INCR', KEYS[1])
  local t = redis.call('TIME')
  local now = t[1] * 1000000 + t[2]
  if v < now then
    redis.call('SET', KEYS[1], string.format('%.0f', now), 'KEEPTTL')
  end
end
return 1
";

/// Takes the lease `KEYS[1]` for token `ARGV[1]` for `ARGV[2]` ms; idempotent,
/// so a pipeline resent after NOSCRIPT finds the lease already ours. When
/// another token holds it, marks the entry as waited for (`KEYS[2]`), so its
/// release is published.
const ACQUIRE: &str = r"
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  return 1
end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
return 0
";

/// Deletes the lease `KEYS[1]` if token `ARGV[1]` holds it; if the entry was
/// waited for (`KEYS[2]`), publishes the entry key `ARGV[3]` on channel
/// `ARGV[2]` (a refused publish changes nothing).
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if redis.call('DEL', KEYS[2]) == 1 then
    pcall(redis.call, 'PUBLISH', ARGV[2], ARGV[3])
  end
end
return 1
";

/// Stores `ARGV[2]` at `KEYS[1]` for `ARGV[3]` ms if the lease `KEYS[2]` still
/// holds token `ARGV[1]`, and releases the lease; if the entry was waited for
/// (`KEYS[3]`), publishes its key on channel `ARGV[4]`.
const STORE: &str = r"
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  redis.call('DEL', KEYS[2])
  if redis.call('DEL', KEYS[3]) == 1 then
    pcall(redis.call, 'PUBLISH', ARGV[4], KEYS[1])
  end
  return 1
end
return 0
";

pub(crate) struct Scripts {
    pub(crate) observe: Script,
    pub(crate) bump: Script,
    pub(crate) acquire: Script,
    pub(crate) release: Script,
    pub(crate) store: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            observe: Script::new(OBSERVE),
            bump: Script::new(BUMP),
            acquire: Script::new(ACQUIRE),
            release: Script::new(RELEASE),
            store: Script::new(STORE),
        }
    }

    pub(crate) fn all(&self) -> [&Script; 5] {
        [&self.observe, &self.bump, &self.acquire, &self.release, &self.store]
    }
}

/// The text of the store's script whose SHA1 is `hash`, to send it in full to
/// a node that lost it.
pub(crate) fn body_of(hash: &[u8]) -> Option<&'static str> {
    static BODIES: std::sync::LazyLock<Vec<(String, &'static str)>> = std::sync::LazyLock::new(|| {
        [OBSERVE, BUMP, ACQUIRE, RELEASE, STORE]
            .into_iter()
            .map(|body| (Script::new(body).get_hash().to_owned(), body))
            .collect()
    });
    BODIES.iter().find(|(sha, _)| sha.as_bytes().eq_ignore_ascii_case(hash)).map(|(_, body)| *body)
}

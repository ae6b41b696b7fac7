//! `negative_ttl` on `Option`, `Result<Option<T>, E>` and their aliases, from
//! a literal or a constant.

type Lookup<T> = Result<Option<T>, String>;

const MISSING_TTL: u64 = 10;

#[cache_runtime::cached(key = "user:<id>", ttl = 60, negative_ttl = 5)]
async fn find_user(id: u64) -> Option<u64> {
    (id > 0).then_some(id)
}

#[cache_runtime::cached(key = "email:<email>", ttl = 60, negative_ttl = MISSING_TTL)]
async fn by_email(email: String) -> Lookup<u64> {
    Ok(email.strip_prefix("user").and_then(|id| id.parse().ok()))
}

fn main() {
    drop((find_user(1), by_email(String::new())));
}

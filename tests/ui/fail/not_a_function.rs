#[cache_runtime::cached(key = "x", ttl = 60)]
struct NotAFunction;

fn main() {}

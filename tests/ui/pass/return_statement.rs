//! A body ending in `return x;` compiles without a warning: the expansion
//! silences no lint around the user's code.
#![deny(warnings)]

#[cache_runtime::cached(key = "double:<n>", ttl = 60)]
async fn double(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    return n * 2;
}

#[cache_runtime::cached(key = "parse:<text>", ttl = 60)]
async fn parse(text: String) -> Result<u64, String> {
    let n: u64 = text.parse().map_err(|_| format!("not a number: {text}"))?;
    return Ok(n);
}

#[cache_runtime::invalidates(keys = ["double:<n>"])]
async fn reset(n: u64) -> Result<(), String> {
    return Ok(());
}

fn main() {
    drop((double(1), parse(String::new()), reset(1)));
}

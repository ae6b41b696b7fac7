#[cache_runtime::cached(key = "price:<amount>", ttl = 60)]
async fn price(amount: f64) -> String {
    format!("{amount:.2}")
}

fn main() {}

use cache_runtime::cached;

#[cached(key = "parsed:<text>", ttl = 60)]
async fn parse_as<T>(text: &str) -> Option<T>
where
    T: std::str::FromStr + serde::Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
{
    text.parse().ok()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(parse_as::<u8>("7").await, Some(7));
    assert_eq!(parse_as::<String>("7").await.as_deref(), Some("7"));
}

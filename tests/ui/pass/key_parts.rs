use std::time::{Duration, SystemTime};

use cache_runtime::cached;

#[cached(key = "tags:<tags>:<pair>", ttl = 60)]
async fn tagged(tags: Vec<String>, pair: (u64, &str)) -> usize {
    tags.len() + pair.1.len()
}

#[cached(key = "grid:<rows>|<ids>", ttl = 60)]
async fn grid(rows: &[Vec<String>], ids: [u32; 3]) -> usize {
    rows.len() + ids.len()
}

#[cached(ttl = 60)]
async fn since(at: SystemTime, window: (u8, u16, u32, u64, i8, Option<i16>)) -> u64 {
    u64::from(window.0)
}

#[cached(key = "user:<id>:<day>", ttl = 60)]
async fn visits(id: uuid::Uuid, day: chrono::NaiveDate) -> u32 {
    id.as_fields().1.into()
}

#[cached(ttl = 60)]
async fn events(at: chrono::DateTime<chrono::Utc>, local: chrono::NaiveDateTime) -> bool {
    at.naive_utc() == local
}

#[cached(ttl = 60)]
async fn ledger(at: time::OffsetDateTime, day: time::Date, local: time::PrimitiveDateTime) -> bool {
    at.date() == day && local.date() == day
}

/// A generic key part needs the bound its hint names.
#[cached(ttl = 60)]
async fn generic<T: cache_runtime::KeyPart + Sync>(id: T) -> u8 {
    let _ = &id;
    1
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(tagged(vec!["a:b".into()], (1, "x")).await, 2);
    assert_eq!(grid(&[vec!["r".into()]], [1, 2, 3]).await, 4);
    assert_eq!(since(SystemTime::UNIX_EPOCH + Duration::from_secs(1), (1, 2, 3, 4, 5, None)).await, 1);
    let day = chrono::NaiveDate::from_ymd_opt(2024, 1, 2).unwrap();
    assert_eq!(visits(uuid::Uuid::from_u128(7 << 80), day).await, 7);
    let local = day.and_hms_opt(3, 4, 5).unwrap();
    assert!(events(local.and_utc(), local).await);
    let at = time::OffsetDateTime::UNIX_EPOCH;
    assert!(ledger(at, at.date(), time::PrimitiveDateTime::new(at.date(), at.time())).await);
    assert_eq!(generic(5_u8).await, 1);
}

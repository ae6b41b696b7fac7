use std::sync::Arc;

struct Report {
    rows: Vec<u64>,
}

#[cache_runtime::cached(key = "report:<id>", ttl = 60)]
async fn report(id: u64) -> Arc<Report> {
    Arc::new(Report { rows: vec![id] })
}

fn main() {}

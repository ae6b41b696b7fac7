use cache_runtime::invalidates;

#[invalidates("user:<id>")]
async fn rename(id: u64) -> Result<(), String> {
    let _ = id;
    Ok(())
}

fn main() {}

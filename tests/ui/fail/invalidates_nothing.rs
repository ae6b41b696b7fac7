#[cache_runtime::invalidates(skip = [id])]
async fn update_user(id: u64) -> Result<(), String> {
    let _ = id;
    Ok(())
}

fn main() {}

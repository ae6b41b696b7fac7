#[cache_runtime::invalidates(keys = ["user:<id>"])]
async fn update_user(id: u64, name: String) -> Result<(), String> {
    let _ = name;
    Ok(())
}

fn main() {}

pub async fn update_user(
    db: &Db,
    id: u64,
    org_id: u64,
    team_id: u64,
    input: UpdateUser,
) -> Result<User, DbError> {
    let __cache_invalidation = ::cache_runtime::__private::Invalidation {
        keys: [
            {
                let mut __cache_writer = ::cache_runtime::__private::KeyWriter::new();
                __cache_writer.write_literal("user:");
                __cache_writer.write_part(&id);
                __cache_writer
            },
            __cached_get_user(&(id), &(org_id)).into_key(),
        ],
        tags: [
            {
                let mut __cache_writer = ::cache_runtime::__private::KeyWriter::new();
                __cache_writer.write_literal("org:");
                __cache_writer.write_part(&org_id);
                __cache_writer
            },
        ],
        versions: [
            {
                let mut __cache_writer = ::cache_runtime::__private::KeyWriter::new();
                __cache_writer.write_literal("team:");
                __cache_writer.write_part(&team_id);
                __cache_writer
            },
        ],
    };
    let __cache_mode = {
        use ::cache_runtime::__private::Returns as _;
        (&&&::cache_runtime::__private::Probe::<Result<User, DbError>>::new()).mode()
    };
    ::cache_runtime::__private::invalidating_as::<
        _,
        _,
        _,
        _,
        2usize,
        1usize,
        1usize,
    >(
            __cache_mode,
            ::cache_runtime::__private::default_cache(),
            __cache_invalidation,
            async move { db.update(id, input).await },
        )
        .await
}

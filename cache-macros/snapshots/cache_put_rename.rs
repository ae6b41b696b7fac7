pub async fn rename(
    db: &Db,
    id: u64,
    org_id: u64,
    name: String,
) -> Result<User, DbError> {
    let __cache_entry = users::__cached_get_user(&(id), &(org_id));
    let __cache_reader = {
        use ::cache_runtime::__private::Returns as _;
        (&&&__cache_entry.probe()).mode()
    };
    let __cache_storage = {
        use ::cache_runtime::__private::Stores as _;
        (&&__cache_entry.storage_probe(&__cache_reader)).storage()
    };
    let __cache_mode = {
        use ::cache_runtime::__private::Returns as _;
        (&&&::cache_runtime::__private::Probe::<Result<User, DbError>>::new()).mode()
    };
    ::cache_runtime::__private::putting(
            __cache_mode,
            __cache_reader,
            __cache_storage,
            __cache_entry,
            ::cache_runtime::__private::cache_of(&(db.cache)),
            ::cache_runtime::__private::value_for,
            ::cache_runtime::__private::returning::<
                Result<User, DbError>,
                _,
            >(async move { db.rename(id, name).await }),
        )
        .await
}

/// Reads a user.
pub async fn get_user(db: &Db, id: u64, org_id: u64) -> Result<User, DbError> {
    static __CACHE_SITE: ::cache_runtime::__private::Site = ::cache_runtime::__private::Site::new(
        ::cache_runtime::__private::concat!(
            ::cache_runtime::__private::module_path!(), "::", "get_user"
        ),
        300u64,
        45u64,
    );
    let __cache_key = {
        let mut __cache_writer = ::cache_runtime::__private::KeyWriter::new();
        __cache_writer.write_literal("user:");
        __cache_writer.write_part(&id);
        __cache_writer
    };
    let __cache_dependencies = ::cache_runtime::__private::Dependencies {
        tags: [
            {
                let mut __cache_writer = ::cache_runtime::__private::KeyWriter::new();
                __cache_writer.write_literal("org:");
                __cache_writer.write_part(&org_id);
                __cache_writer
            },
        ],
        versions: [],
    };
    let __cache_mode = {
        use ::cache_runtime::__private::Returns as _;
        (&&&::cache_runtime::__private::Probe::<Result<User, DbError>>::new()).mode()
    };
    let __cache_storage = {
        use ::cache_runtime::__private::Stores as _;
        (&&::cache_runtime::__private::StorageProbe::of::<
            Result<User, DbError>,
            _,
        >(&__cache_mode))
            .storage()
    };
    ::cache_runtime::__private::cached_as::<
        _,
        Result<User, DbError>,
        ::cache_runtime::__private::Postcard,
        _,
        _,
        _,
        1usize,
        0usize,
    >(
            __cache_mode,
            __cache_storage,
            &__CACHE_SITE,
            ::cache_runtime::__private::default_cache(),
            __cache_key,
            __cache_dependencies,
            &[],
            async move { db.user(id).await },
        )
        .await
}

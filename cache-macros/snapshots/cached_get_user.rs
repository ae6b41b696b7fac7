/// Reads a user.
pub async fn get_user(db: &Db, id: u64, org_id: u64) -> Result<User, DbError> {
    let __cache_entry = {
        static __CACHE_SITE: ::cache_runtime::__private::Site = ::cache_runtime::__private::Site::new(
            ::cache_runtime::__private::concat!(
                ::cache_runtime::__private::module_path!(), "::", "get_user"
            ),
            300u64,
            45u64,
        );
        <::cache_runtime::__private::Entry<
            Result<User, DbError>,
            ::cache_runtime::__private::Postcard,
            1usize,
            0usize,
        >>::new(
            &__CACHE_SITE,
            {
                let mut __cache_writer = ::cache_runtime::__private::KeyWriter::new();
                __cache_writer.write_literal("user:");
                __cache_writer.write_part(&id);
                __cache_writer
            },
            ::cache_runtime::__private::Dependencies {
                tags: [
                    {
                        let mut __cache_writer = ::cache_runtime::__private::KeyWriter::new();
                        __cache_writer.write_literal("org:");
                        __cache_writer.write_part(&org_id);
                        __cache_writer
                    },
                ],
                versions: [],
            },
            ::cache_runtime::__private::vec![],
        )
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
            __cache_entry,
            ::cache_runtime::__private::default_cache(),
            async move { db.user(id).await },
        )
        .await
}
///The cache entry of `get_user` for these arguments.
#[doc(hidden)]
#[allow(clippy::trivially_copy_pass_by_ref, clippy::ref_option, clippy::unused_self)]
pub fn __cached_get_user(
    id: &u64,
    org_id: &u64,
) -> ::cache_runtime::__private::Entry<
    Result<User, DbError>,
    ::cache_runtime::__private::Postcard,
    1usize,
    0usize,
> {
    static __CACHE_SITE: ::cache_runtime::__private::Site = ::cache_runtime::__private::Site::new(
        ::cache_runtime::__private::concat!(
            ::cache_runtime::__private::module_path!(), "::", "get_user"
        ),
        300u64,
        45u64,
    );
    <::cache_runtime::__private::Entry<
        Result<User, DbError>,
        ::cache_runtime::__private::Postcard,
        1usize,
        0usize,
    >>::new(
        &__CACHE_SITE,
        {
            let mut __cache_writer = ::cache_runtime::__private::KeyWriter::new();
            __cache_writer.write_literal("user:");
            __cache_writer.write_part(&*id);
            __cache_writer
        },
        ::cache_runtime::__private::Dependencies {
            tags: [
                {
                    let mut __cache_writer = ::cache_runtime::__private::KeyWriter::new();
                    __cache_writer.write_literal("org:");
                    __cache_writer.write_part(&*org_id);
                    __cache_writer
                },
            ],
            versions: [],
        },
        ::cache_runtime::__private::vec![],
    )
}

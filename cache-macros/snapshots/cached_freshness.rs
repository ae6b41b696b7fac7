pub async fn team(db: Arc<Db>, id: u64) -> Result<Team, DbError> {
    let __cache_entry = {
        const __CACHE_HARD_TIMEOUT: ::cache_runtime::__private::u64 = HARD_MS;
        const _: () = ::cache_runtime::__private::assert!(
            __CACHE_HARD_TIMEOUT != 0,
            "a timeout of 0 ms is not a limit: give a positive number of milliseconds",
        );
        static __CACHE_SITE: ::cache_runtime::__private::Site = ::cache_runtime::__private::Site::new(
                ::cache_runtime::__private::concat!(
                    ::cache_runtime::__private::module_path!(), "::", "team"
                ),
                60u64,
                0u64,
            )
            .with_stale(30u64)
            .with_fail_safe(3600u64, 5u64)
            .with_early_refresh(1f64)
            .with_timeouts(150u64, __CACHE_HARD_TIMEOUT)
            .with_max_loads(8u64);
        <::cache_runtime::__private::Entry<
            Result<Team, DbError>,
            ::cache_runtime::__private::Postcard,
            0usize,
            0usize,
        >>::new(
            &__CACHE_SITE,
            {
                let mut __cache_writer = ::cache_runtime::__private::KeyWriter::new();
                __cache_writer.write_literal("team:");
                __cache_writer.write_part(&id);
                __cache_writer
            },
            ::cache_runtime::__private::Dependencies {
                tags: [],
                versions: [],
            },
            ::cache_runtime::__private::vec![],
        )
    };
    let __cache_mode = {
        use ::cache_runtime::__private::Returns as _;
        (&&&::cache_runtime::__private::Probe::<Result<Team, DbError>>::new()).mode()
    };
    let __cache_storage = {
        use ::cache_runtime::__private::Stores as _;
        (&&::cache_runtime::__private::StorageProbe::of::<
            Result<Team, DbError>,
            _,
        >(&__cache_mode))
            .storage()
    };
    ::cache_runtime::__private::cached_refreshing_as::<
        _,
        Result<Team, DbError>,
        ::cache_runtime::__private::Postcard,
        _,
        _,
        _,
        0usize,
        0usize,
    >(
            __cache_mode,
            __cache_storage,
            __cache_entry,
            ::cache_runtime::__private::default_cache(),
            async move { db.team(id).await },
        )
        .await
}
///The cache entry of `team` for these arguments.
#[doc(hidden)]
#[allow(clippy::trivially_copy_pass_by_ref, clippy::ref_option, clippy::unused_self)]
pub fn __cached_team(
    id: &u64,
) -> ::cache_runtime::__private::Entry<
    Result<Team, DbError>,
    ::cache_runtime::__private::Postcard,
    0usize,
    0usize,
> {
    const __CACHE_HARD_TIMEOUT: ::cache_runtime::__private::u64 = HARD_MS;
    static __CACHE_SITE: ::cache_runtime::__private::Site = ::cache_runtime::__private::Site::new(
            ::cache_runtime::__private::concat!(
                ::cache_runtime::__private::module_path!(), "::", "team"
            ),
            60u64,
            0u64,
        )
        .with_stale(30u64)
        .with_fail_safe(3600u64, 5u64)
        .with_early_refresh(1f64)
        .with_timeouts(150u64, __CACHE_HARD_TIMEOUT)
        .with_max_loads(8u64);
    <::cache_runtime::__private::Entry<
        Result<Team, DbError>,
        ::cache_runtime::__private::Postcard,
        0usize,
        0usize,
    >>::new(
        &__CACHE_SITE,
        {
            let mut __cache_writer = ::cache_runtime::__private::KeyWriter::new();
            __cache_writer.write_literal("team:");
            __cache_writer.write_part(&*id);
            __cache_writer
        },
        ::cache_runtime::__private::Dependencies {
            tags: [],
            versions: [],
        },
        ::cache_runtime::__private::vec![],
    )
}

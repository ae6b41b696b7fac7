impl Users {
    async fn user(&self, id: u64) -> Option<User> {
        let __cache_entry = {
            static __CACHE_SITE: ::cache_runtime::__private::Site = ::cache_runtime::__private::Site::new(
                    ::cache_runtime::__private::concat!(
                        ::cache_runtime::__private::module_path!(), "::", "user"
                    ),
                    60u64,
                    0u64,
                )
                .schema(2u32);
            __CACHE_SITE.qualify(::cache_runtime::__private::function_path(&|| {}));
            <::cache_runtime::__private::Entry<
                Option<User>,
                ::cache_runtime::__private::Postcard,
                0usize,
                0usize,
            >>::new(
                &__CACHE_SITE,
                {
                    let mut __cache_writer = ::cache_runtime::__private::KeyWriter::new();
                    __cache_writer
                        .write_impl_scope(
                            ::cache_runtime::__private::type_name::<Self>(),
                        );
                    __cache_writer.write_literal("user:");
                    __cache_writer.write_part(&self.tenant);
                    __cache_writer.write_literal(":");
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
            (&&&::cache_runtime::__private::Probe::<Option<User>>::new()).mode()
        };
        let __cache_storage = {
            use ::cache_runtime::__private::Stores as _;
            (&&::cache_runtime::__private::StorageProbe::of::<
                Option<User>,
                _,
            >(&__cache_mode))
                .storage()
        };
        ::cache_runtime::__private::cached_as::<
            _,
            Option<User>,
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
                async move { self.db.user(id).await },
            )
            .await
    }
    async fn count(&self, org_id: u64) -> u64 {
        let __cache_entry = {
            const __CACHE_TTL: ::cache_runtime::__private::u64 = COUNT_TTL;
            const _: () = ::cache_runtime::__private::assert!(
                __CACHE_TTL != 0,
                "`ttl` is 0, which would never serve a cached value: give a positive number of seconds",
            );
            const __CACHE_JITTER: ::cache_runtime::__private::u64 = COUNT_TTL / 10;
            static __CACHE_SITE: ::cache_runtime::__private::Site = ::cache_runtime::__private::Site::new(
                ::cache_runtime::__private::concat!(
                    ::cache_runtime::__private::module_path!(), "::", "count"
                ),
                __CACHE_TTL,
                __CACHE_JITTER,
            );
            __CACHE_SITE.qualify(::cache_runtime::__private::function_path(&|| {}));
            <::cache_runtime::__private::Entry<
                u64,
                ::cache_runtime::__private::Postcard,
                0usize,
                0usize,
            >>::new(
                &__CACHE_SITE,
                {
                    let mut __cache_writer = ::cache_runtime::__private::KeyWriter::new();
                    __cache_writer
                        .write_function_path(
                            ::cache_runtime::__private::function_path(&|| {}),
                        );
                    __cache_writer.write_literal(":");
                    __cache_writer.write_part(&org_id);
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
            (&&&::cache_runtime::__private::Probe::<u64>::new()).mode()
        };
        let __cache_storage = {
            use ::cache_runtime::__private::Stores as _;
            (&&::cache_runtime::__private::StorageProbe::of::<u64, _>(&__cache_mode))
                .storage()
        };
        ::cache_runtime::__private::cached_as::<
            _,
            u64,
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
                async move { self.db.count(org_id).await },
            )
            .await
    }
    async fn rename(&self, id: u64, org_id: u64, name: String) -> Result<(), DbError> {
        let __cache_invalidation = ::cache_runtime::__private::Invalidation {
            keys: [
                {
                    let mut __cache_writer = ::cache_runtime::__private::KeyWriter::new();
                    __cache_writer.write_literal("user:");
                    __cache_writer.write_part(&self.tenant);
                    __cache_writer.write_literal(":");
                    __cache_writer.write_part(&id);
                    __cache_writer
                },
                {
                    let mut __cache_writer = ::cache_runtime::__private::KeyWriter::new();
                    __cache_writer
                        .write_impl_scope(
                            ::cache_runtime::__private::type_name::<Self>(),
                        );
                    __cache_writer.write_literal("user:");
                    __cache_writer.write_part(&self.tenant);
                    __cache_writer.write_literal(":");
                    __cache_writer.write_part(&id);
                    __cache_writer
                },
            ],
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
            (&&&::cache_runtime::__private::Probe::<Result<(), DbError>>::new()).mode()
        };
        ::cache_runtime::__private::invalidating_as::<
            _,
            _,
            _,
            _,
            2usize,
            1usize,
            0usize,
        >(
                __cache_mode,
                ::cache_runtime::__private::default_cache(),
                __cache_invalidation,
                async move { self.db.rename(id, name).await },
            )
            .await
    }
}

//! Compile-time checks of `#[cached]` and `#[invalidates]`, with trybuild.
//!
//! The `.stderr` files were made with rustc 1.95 stable; compiler messages
//! change between versions, so the cases run on that version only, and say so
//! loudly elsewhere. Regenerate with `TRYBUILD=overwrite cargo test -p cache-tests --test ui`
//! and review the diff.

#[rustversion::stable(1.95)]
#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("ui/pass/*.rs");
    cases.compile_fail("ui/fail/*.rs");
}

#[rustversion::not(stable(1.95))]
#[test]
fn ui() {
    eprintln!(
        "SKIPPED: the ui tests' .stderr files were made with rustc 1.95 stable; \
         this is another compiler, so the compile-fail cases do not run"
    );
}

//! `consortd`: one organization's Consort daemon.

/// mimalloc instead of glibc malloc: the record path allocates many small buffers on one
/// thread and frees them on others, where glibc spent a fifth of the daemon's CPU at 50 parties
/// (`malloc_consolidate`, `_int_malloc`); see BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    consort_daemon::args::main()
}

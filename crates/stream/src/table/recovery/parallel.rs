//! A few blocking requests at once: an assignment opens many stores (fsync) and fetches many
//! changelog watermarks (a broker round trip each), mostly waiting.

/// Requests in flight at once when an assignment's stores are opened or its changelog
/// watermarks fetched: each is mostly waiting (fsync, a broker round trip).
const ASSIGN_PARALLELISM: usize = 8;

/// Runs `f` over `items` on up to [`ASSIGN_PARALLELISM`] scoped threads; results in order.
pub fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if items.len() <= 1 {
        return items.iter().map(&f).collect();
    }
    let chunk = items.len().div_ceil(ASSIGN_PARALLELISM);
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|c| {
                let f = &f;
                s.spawn(move || c.iter().map(f).collect::<Vec<R>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

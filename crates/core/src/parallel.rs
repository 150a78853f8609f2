//! Sharing work among threads: independent jobs run on one pool of worker
//! threads that lives as long as the program (rayon's global pool, one
//! thread per core), and a list of items (say, a model's parameters) can be
//! cut into consecutive groups of about equal weight, one job per group.
//!
//! Keeping the threads alive matters for training: a thread that is new
//! every step starts with a cold allocator heap (whose fresh pages the kernel
//! must zero on first touch) and with empty packing buffers for the matrix
//! kernels.

use rayon::prelude::*;

/// The number of worker threads a setting asks for: `requested`, or one per
/// core for 0.
///
/// ```
/// use addmul_core::parallel::threads;
/// assert_eq!(threads(3), 3);
/// assert!(threads(0) >= 1);
/// ```
pub fn threads(requested: usize) -> usize {
    if requested == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { requested }
}

/// Matrix-vector products whose matrix has at least this many entries are
/// shared among the pool's threads ([`gemm`](crate::gemm) with one column):
/// below it, handing out the work costs more than it saves.
pub const PARALLEL_GEMV_ENTRIES: usize = 1 << 18;

/// Matrix products ([`gemm`](crate::gemm) with more than one column) of at
/// least this many multiply-adds are shared among the pool's threads inside
/// [`share_products`].
pub const PARALLEL_GEMM_WORK: usize = 1 << 22;

thread_local! {
    static SHARE_PRODUCTS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` (on the shared pool, see [`on_pool`]) with each large matrix
/// product it makes on this thread shared among the pool's threads: for work
/// that is one sequence at a time, such as reading a prompt. Training does not
/// use it: there each thread already has a sequence of its own.
///
/// The gemm kernels split the output among the threads, never a sum, so the
/// results are the same bit for bit as on one thread (tested).
pub fn share_products<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    on_pool(|| {
        struct Reset(bool);
        impl Drop for Reset {
            fn drop(&mut self) {
                SHARE_PRODUCTS.with(|s| s.set(self.0));
            }
        }
        let _reset = Reset(SHARE_PRODUCTS.with(|s| s.replace(true)));
        f()
    })
}

/// Whether this thread is inside [`share_products`].
pub fn products_shared() -> bool {
    SHARE_PRODUCTS.with(std::cell::Cell::get)
}

/// `xs` mapped by `f` entry by entry, into a new vector; inside
/// [`share_products`] a long slice is cut among the pool's threads (each entry
/// is its own computation, so the result is the same either way).
///
/// ```
/// use addmul_core::parallel::{map_entries, share_products};
/// let xs: Vec<f32> = (0..100_000).map(|i| i as f32).collect();
/// let once = map_entries(&xs, |v| v * 2.0);
/// assert_eq!(share_products(|| map_entries(&xs, |v| v * 2.0)), once);
/// ```
pub fn map_entries<T: Copy + Send + Sync, U: Send>(xs: &[T], f: impl Fn(T) -> U + Sync + Send) -> Vec<U> {
    const PARALLEL_ENTRIES: usize = 1 << 16;
    if xs.len() >= PARALLEL_ENTRIES && products_shared() && rayon::current_num_threads() > 1 {
        xs.par_iter().with_min_len(PARALLEL_ENTRIES / 4).map(|&v| f(v)).collect()
    } else {
        xs.iter().map(|&v| f(v)).collect()
    }
}

/// The threads of the shared pool (one per core, unless `RAYON_NUM_THREADS`
/// says otherwise).
pub fn pool_threads() -> usize {
    rayon::current_num_threads()
}

/// Runs `f` on a thread of the shared pool (on this one if it is one), so
/// that the work `f` shares out inside (a large matrix-vector product, say)
/// goes to threads that are awake and stealing work, instead of waking the
/// pool from outside at every product: how decoding one token at a time,
/// dozens of products per token, gets the memory bandwidth of every core.
pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() { f() } else { rayon::scope(|_| f()) }
}

/// Runs `f` on every item, each as its own job on the shared pool, and
/// returns the results in the items' order. The order (and so any reduction
/// over the results) does not depend on which thread ran which job. A panic
/// in a job is resumed on the calling thread.
///
/// ```
/// use addmul_core::parallel::run_each;
/// assert_eq!(run_each(vec![1, 2, 3], |x| x * 10), vec![10, 20, 30]);
/// ```
pub fn run_each<X, R, F>(items: Vec<X>, f: F) -> Vec<R>
where
    X: Send,
    R: Send,
    F: Fn(X) -> R + Sync + Send,
{
    if items.len() <= 1 {
        return items.into_iter().map(f).collect();
    }
    items.into_par_iter().with_max_len(1).map(f).collect()
}

/// Cuts `items` into at most `parts` consecutive groups of about equal total
/// `weight`, runs `f` on each group (each group a job on the shared pool, see
/// [`run_each`]) and returns the results in group order.
///
/// Groups are consecutive and their boundaries depend only on the weights
/// and `parts`, so a reduction over the results in order is deterministic.
/// With `parts <= 1` everything runs on this thread.
///
/// ```
/// use addmul_core::parallel::run_balanced;
/// let sums = run_balanced(vec![1, 2, 3, 4, 5, 6], 2, |&x| x, |group| group.iter().sum::<usize>());
/// assert_eq!(sums.iter().sum::<usize>(), 21);
/// assert_eq!(sums, vec![10, 11]); // [1, 2, 3, 4] and [5, 6]
/// ```
pub fn run_balanced<X, R, W, F>(items: Vec<X>, parts: usize, weight: W, f: F) -> Vec<R>
where
    X: Send,
    R: Send,
    W: Fn(&X) -> usize,
    F: Fn(Vec<X>) -> R + Sync + Send,
{
    run_each(split_balanced(items, parts, weight), f)
}

/// Cuts `items` into at most `parts` consecutive, non-empty groups: an item
/// goes to the group in whose share of the total weight its midpoint falls.
fn split_balanced<X, W: Fn(&X) -> usize>(items: Vec<X>, parts: usize, weight: W) -> Vec<Vec<X>> {
    let parts = parts.max(1);
    let total = items.iter().map(&weight).sum::<usize>().max(1) as f64;
    let mut groups: Vec<Vec<X>> = Vec::with_capacity(parts);
    let (mut before, mut last) = (0usize, usize::MAX);
    for item in items {
        let w = weight(&item);
        let mid = (before as f64 + w as f64 / 2.0) / total;
        let group = ((mid * parts as f64) as usize).min(parts - 1);
        before += w;
        if group != last || groups.is_empty() {
            groups.push(Vec::new());
            last = group;
        }
        groups.last_mut().expect("just pushed").push(item);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_keep_order_and_balance_weight() {
        let groups = split_balanced((1..=10).collect::<Vec<usize>>(), 3, |&x| x);
        assert_eq!(groups.concat(), (1..=10).collect::<Vec<_>>());
        assert_eq!(groups.len(), 3);
        for g in &groups {
            let w: usize = g.iter().sum();
            assert!((12..=27).contains(&w), "{groups:?}");
        }
    }

    #[test]
    fn degenerate_inputs() {
        assert!(split_balanced(Vec::<usize>::new(), 4, |&x| x).is_empty());
        assert_eq!(split_balanced(vec![5], 4, |&x| x), vec![vec![5]]);
        assert_eq!(split_balanced(vec![1, 2], 0, |&x| x), vec![vec![1, 2]]);
        assert_eq!(split_balanced(vec![0, 0, 0], 2, |&x| x).concat(), vec![0, 0, 0]);
        assert_eq!(run_balanced(Vec::<usize>::new(), 2, |&x| x, |g| g.len()), Vec::<usize>::new());
    }

    #[test]
    fn results_come_back_in_group_order() {
        let out = run_balanced((0..100).collect::<Vec<usize>>(), 4, |_| 1, |g| g[0]);
        assert_eq!(out, vec![0, 25, 50, 75]);
    }
}

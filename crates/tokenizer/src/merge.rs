//! Encoding one piece by merges: tiktoken's algorithm.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Pieces with at least this many units are merged with a heap (O(n log n))
/// instead of by scanning (O(n²), faster for short pieces).
const HEAP_THRESHOLD: usize = 128;

// ANCHOR: merge_by_rank
/// Merges the units of `piece` into tokens: `starts` holds the byte offset
/// where each unit begins (every byte for byte-level BPE, every character for
/// SentencePiece-style BPE). While some pair of neighbouring parts joins into
/// a token, the pair whose joined bytes have the **lowest rank** is merged;
/// among equal ranks, the leftmost. Returns the start of every final part
/// (followed by `piece.len()`).
///
/// This is how tiktoken encodes, and ranks are looked up by the joined
/// *bytes*, not by the pair that made them in training.
pub(crate) fn merge_by_rank(piece: &[u8], starts: Vec<usize>, rank: impl Fn(&[u8]) -> Option<u32>) -> Vec<usize> {
    if starts.len() >= HEAP_THRESHOLD {
        return merge_by_rank_heap(piece, starts, rank);
    }
    let end_of = |parts: &[(usize, u32)], i: usize| parts.get(i).map_or(piece.len(), |p| p.0);
    let pair_rank = |parts: &[(usize, u32)], i: usize| {
        if i + 1 >= parts.len() {
            return u32::MAX;
        }
        rank(&piece[parts[i].0..end_of(parts, i + 2)]).unwrap_or(u32::MAX)
    };
    let mut parts: Vec<(usize, u32)> = starts.into_iter().map(|s| (s, u32::MAX)).collect();
    for i in 0..parts.len() {
        parts[i].1 = pair_rank(&parts, i);
    }
    loop {
        let (mut best, mut at) = (u32::MAX, 0);
        for (i, &(_, r)) in parts.iter().enumerate() {
            if r < best {
                (best, at) = (r, i);
            }
        }
        if best == u32::MAX {
            break;
        }
        parts.remove(at + 1);
        parts[at].1 = pair_rank(&parts, at);
        if at > 0 {
            parts[at - 1].1 = pair_rank(&parts, at - 1);
        }
    }
    parts.into_iter().map(|p| p.0).chain(std::iter::once(piece.len())).collect()
}
// ANCHOR_END: merge_by_rank

/// [`merge_by_rank`] with a linked list of parts and a heap of candidate
/// merges ordered by (rank, position): the same merges in the same order.
fn merge_by_rank_heap(piece: &[u8], starts: Vec<usize>, rank: impl Fn(&[u8]) -> Option<u32>) -> Vec<usize> {
    const NONE: usize = usize::MAX;
    let n = starts.len();
    let mut start = starts;
    let mut next: Vec<usize> = (1..=n).map(|i| if i < n { i } else { NONE }).collect();
    let mut prev: Vec<usize> = (0..n).map(|i| if i == 0 { NONE } else { i - 1 }).collect();
    let mut alive = vec![true; n];
    let mut current = vec![u32::MAX; n];
    let end_of = |next: &[usize], start: &[usize], i: usize| if next[i] == NONE { piece.len() } else { start[next[i]] };
    let mut heap = BinaryHeap::new();
    let pair_rank = |next: &[usize], start: &[usize], i: usize| {
        let j = next[i];
        if j == NONE {
            return u32::MAX;
        }
        rank(&piece[start[i]..end_of(next, start, j)]).unwrap_or(u32::MAX)
    };
    for i in 0..n {
        current[i] = pair_rank(&next, &start, i);
        if current[i] != u32::MAX {
            heap.push(Reverse((current[i], i)));
        }
    }
    while let Some(Reverse((r, i))) = heap.pop() {
        if !alive[i] || current[i] != r {
            continue;
        }
        let j = next[i];
        alive[j] = false;
        next[i] = next[j];
        if next[j] != NONE {
            prev[next[j]] = i;
        }
        for k in [i, prev[i]] {
            if k == NONE {
                continue;
            }
            current[k] = pair_rank(&next, &start, k);
            if current[k] != u32::MAX {
                heap.push(Reverse((current[k], k)));
            }
        }
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i != NONE {
        out.push(start[i]);
        i = next[i];
    }
    start.clear();
    out.push(piece.len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn heap_and_scan_agree() {
        let mut ranks: HashMap<Vec<u8>, u32> = HashMap::new();
        for (i, t) in ["ab", "bc", "abc", "aa", "aaa", "ca", "bca", "aab"].iter().enumerate() {
            ranks.insert(t.as_bytes().to_vec(), i as u32);
        }
        let rank = |b: &[u8]| ranks.get(b).copied();
        let mut seed = 12345u64;
        for _ in 0..200 {
            let len = 1 + (seed % 300) as usize;
            let text: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    b"abc"[(seed >> 33) as usize % 3]
                })
                .collect();
            let starts: Vec<usize> = (0..text.len()).collect();
            let scan = {
                // Force the scanning version by chunking the threshold away.
                let mut parts = starts.clone();
                if parts.len() >= HEAP_THRESHOLD {
                    parts = scan_only(&text, parts, rank);
                    parts
                } else {
                    merge_by_rank(&text, parts, rank)
                }
            };
            assert_eq!(merge_by_rank_heap(&text, starts, rank), scan);
        }
    }

    /// The scanning loop without the heap shortcut.
    fn scan_only(piece: &[u8], starts: Vec<usize>, rank: impl Fn(&[u8]) -> Option<u32>) -> Vec<usize> {
        let mut parts = starts;
        parts.push(piece.len());
        loop {
            let mut best = (u32::MAX, 0);
            for i in 0..parts.len().saturating_sub(2) {
                if let Some(r) = rank(&piece[parts[i]..parts[i + 2]])
                    && r < best.0
                {
                    best = (r, i);
                }
            }
            if best.0 == u32::MAX {
                return parts;
            }
            parts.remove(best.1 + 1);
        }
    }
}

//! Splitting data for training and validation, and shuffling it into batches.

use addmul_core::{Error, Result, Rng};
use rand::seq::SliceRandom;

/// Shuffles `items` with `rng` and splits off the last `val_fraction` of them
/// for validation: `(train, validation)`.
///
/// # Errors
/// [`Error::Empty`] if `items` is empty; [`Error::InvalidValue`] if
/// `val_fraction` is not in `(0, 1)` or leaves either side empty.
pub fn train_val_split<E>(mut items: Vec<E>, val_fraction: f64, rng: &mut Rng) -> Result<(Vec<E>, Vec<E>)> {
    if items.is_empty() {
        return Err(Error::Empty { what: "data set" });
    }
    let n_val = validation_size(items.len(), val_fraction)?;
    items.shuffle(rng);
    let val = items.split_off(items.len() - n_val);
    Ok((items, val))
}

/// Splits a sequence in order: the first `1 - val_fraction` for training, the
/// rest for validation (for text, so that validation is unseen prose).
///
/// # Errors
/// As [`train_val_split`].
pub fn split_in_order<E>(items: &[E], val_fraction: f64) -> Result<(&[E], &[E])> {
    if items.is_empty() {
        return Err(Error::Empty { what: "data set" });
    }
    let n_val = validation_size(items.len(), val_fraction)?;
    Ok(items.split_at(items.len() - n_val))
}

fn validation_size(n: usize, val_fraction: f64) -> Result<usize> {
    if !(val_fraction > 0.0 && val_fraction < 1.0) {
        return Err(Error::InvalidValue { what: "validation fraction", value: val_fraction, requirement: "in (0, 1)" });
    }
    let n_val = n - ((1.0 - val_fraction) * n as f64) as usize;
    if n_val == 0 || n_val == n {
        return Err(Error::InvalidValue {
            what: "validation fraction",
            value: val_fraction,
            requirement: "to leave at least one example on each side",
        });
    }
    Ok(n_val)
}

/// The indices `0..n` shuffled and cut into batches of `batch_size` (the last
/// one may be smaller).
///
/// # Errors
/// [`Error::InvalidValue`] if `batch_size` is 0.
pub fn shuffled_batches(n: usize, batch_size: usize, rng: &mut Rng) -> Result<Vec<Vec<usize>>> {
    if batch_size == 0 {
        return Err(Error::InvalidValue { what: "batch size", value: 0.0, requirement: ">= 1" });
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    Ok(order.chunks(batch_size).map(<[usize]>::to_vec).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use addmul_core::rng;

    #[test]
    fn split_keeps_every_item_once() {
        let (train, val) = train_val_split((0..100).collect(), 0.2, &mut rng(1)).unwrap();
        assert_eq!((train.len(), val.len()), (80, 20));
        let mut all: Vec<i32> = train.iter().chain(&val).copied().collect();
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn text_split_is_in_order() {
        let data: Vec<u32> = (0..10).collect();
        let (train, val) = split_in_order(&data, 0.1).unwrap();
        assert_eq!(train, &data[..9]);
        assert_eq!(val, &[9]);
    }

    #[test]
    fn bad_splits_are_typed_errors() {
        assert!(matches!(train_val_split(Vec::<u8>::new(), 0.1, &mut rng(0)), Err(Error::Empty { .. })));
        assert!(split_in_order(&[1, 2, 3], 1.0).is_err());
        assert!(split_in_order(&[1], 0.5).unwrap_err().to_string().contains("at least one"));
        assert!(shuffled_batches(10, 0, &mut rng(0)).is_err());
    }

    #[test]
    fn batches_cover_everything() {
        let batches = shuffled_batches(10, 4, &mut rng(3)).unwrap();
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 2]);
        let mut all: Vec<usize> = batches.concat();
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
    }
}

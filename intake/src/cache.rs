//! The series cache: label-set fingerprint -> series id, bounded. Two generations:
//! lookups search both and move hits to the young one; when the young one holds half
//! the capacity it becomes the old one and the old one is dropped, so series in use
//! stay and memory stays under `capacity` entries (24 bytes each plus map overhead).

use std::collections::HashMap;

pub struct SeriesCache {
    young: HashMap<u128, i64>,
    old: HashMap<u128, i64>,
    half: usize,
}

impl SeriesCache {
    pub fn new(capacity: usize) -> SeriesCache {
        SeriesCache {
            young: HashMap::new(),
            old: HashMap::new(),
            half: (capacity / 2).max(1),
        }
    }

    pub fn get(&mut self, fp: u128) -> Option<i64> {
        if let Some(&id) = self.young.get(&fp) {
            return Some(id);
        }
        let id = self.old.remove(&fp)?;
        self.insert(fp, id);
        Some(id)
    }

    pub fn insert(&mut self, fp: u128, id: i64) {
        if self.young.len() >= self.half {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(fp, id);
    }

    pub fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_keeps_what_is_used() {
        let mut c = SeriesCache::new(10);
        for i in 0..1000u128 {
            c.insert(i, i as i64);
            // series 0 is used all the time
            assert_eq!(c.get(0), Some(0));
            assert!(c.len() <= 10);
        }
        assert_eq!(c.get(999), Some(999));
        assert_eq!(c.get(1), None);
    }
}

//! [`Memo`]: a value made from a key, kept until the key changes.

/// A value computed from a key and kept while the key stays the same: "This step"'s explanation per frame,
/// its term pictures per (frame, colours, image), the token shares per (run, layer), the guidance curve per
/// run. Asking with another key computes the value again.
pub struct Memo<K, V> {
    entry: Option<(K, V)>,
}

impl<K, V> Default for Memo<K, V> {
    fn default() -> Self {
        Self { entry: None }
    }
}

impl<K: PartialEq, V> Memo<K, V> {
    /// The value for `key`, made by `make` only when the key changed.
    pub fn get(&mut self, key: K, make: impl FnOnce(&K) -> V) -> &V {
        self.get_mut(key, make)
    }

    /// The value for `key` to change in place (made by `make` only when the key changed).
    pub fn get_mut(&mut self, key: K, make: impl FnOnce(&K) -> V) -> &mut V {
        let entry = match self.entry.take() {
            Some((k, value)) if k == key => (k, value),
            _ => {
                let value = make(&key);
                (key, value)
            }
        };
        &mut self.entry.insert(entry).1
    }

    /// The value last made, whatever its key.
    pub fn value(&self) -> Option<&V> {
        self.entry.as_ref().map(|(_, v)| v)
    }

    /// The key of the value last made.
    pub fn key(&self) -> Option<&K> {
        self.entry.as_ref().map(|(k, _)| k)
    }
}

#[cfg(test)]
mod tests {
    use super::Memo;

    #[test]
    fn a_memo_computes_again_only_when_its_key_changes() {
        let mut memo = Memo::default();
        let mut made = 0;
        for key in [1, 1, 2, 2, 1] {
            memo.get(key, |k| {
                made += 1;
                k * 10
            });
        }
        assert_eq!((made, memo.key(), memo.value()), (3, Some(&1), Some(&10)));
        *memo.get_mut(1, |_| 0) += 1;
        assert_eq!(memo.value(), Some(&11), "changed in place, kept for the same key");
    }
}

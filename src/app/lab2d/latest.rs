//! [`Latest`]: the page's bookkeeping of a request on its way to the engine, one per kind of request.

/// Requests of one kind sent to the engine: each gets a fresh key, and only the answer to the latest is
/// taken (an older one arrives after the user asked again). It keeps what the latest request asked until
/// its answer comes.
#[derive(Debug)]
pub struct Latest<T> {
    key: u64,
    waiting: Option<(u64, T)>,
}

impl<T> Default for Latest<T> {
    fn default() -> Self {
        Self { key: 0, waiting: None }
    }
}

impl<T> Latest<T> {
    /// A fresh key for a request that asks `what`; an older request's answer will not be taken.
    pub fn send(&mut self, what: T) -> u64 {
        self.key += 1;
        self.waiting = Some((self.key, what));
        self.key
    }

    /// Whether the latest request's answer has not come yet.
    pub fn is_waiting(&self) -> bool {
        self.waiting.is_some()
    }

    /// What the latest request asked, if `key` is its answer's; then nothing is awaited.
    pub fn answer(&mut self, key: u64) -> Option<T> {
        match &self.waiting {
            Some((latest, _)) if *latest == key => self.waiting.take().map(|(_, what)| what),
            _ => None,
        }
    }

    /// Stops waiting (the request failed, or what it asked no longer matters): its answer will not be taken.
    pub fn forget(&mut self) {
        self.waiting = None;
    }
}

#[cfg(test)]
mod tests {
    use super::Latest;

    #[test]
    fn only_the_latest_answer_is_taken_once() {
        let mut latest = Latest::default();
        assert!(!latest.is_waiting());
        let first = latest.send("first");
        let second = latest.send("second");
        assert_ne!(first, second);
        assert!(latest.is_waiting());
        assert_eq!(latest.answer(first), None, "an older request's answer");
        assert!(latest.is_waiting());
        assert_eq!(latest.answer(second), Some("second"));
        assert!(!latest.is_waiting());
        assert_eq!(latest.answer(second), None, "an answer is taken once");
    }

    #[test]
    fn a_forgotten_request_is_not_answered_and_keys_stay_fresh() {
        let mut latest = Latest::default();
        let key = latest.send(());
        latest.forget();
        assert!(!latest.is_waiting());
        assert_eq!(latest.answer(key), None);
        assert!(latest.send(()) > key, "a key is never given twice");
    }
}

//! The topics one member subscribes to, ordered by name.
//!
//! A sorted vector, not a `BTreeSet`: most members subscribe to a handful
//! of topics, and a `BTreeSet`'s first node holds room for eleven names
//! (280 bytes) however few it holds. The vector starts with room for one
//! name (24 bytes) and doubles from there. Adding a topic moves the names
//! after it, which costs a few microseconds only at tens of thousands of
//! subscriptions: a client subscribes one topic per message, and its rate
//! limit bounds how many messages it sends.

/// A member's subscriptions: names, sorted, each once.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Subscriptions(Vec<String>);

impl Subscriptions {
    /// Adds `topic`; returns whether it was new.
    pub fn insert(&mut self, topic: &str) -> bool {
        let Err(at) = self.position(topic) else {
            return false;
        };
        if self.0.len() == self.0.capacity() {
            // `Vec` would make room for four names at the first push.
            self.0.reserve_exact(self.0.len().max(1));
        }
        self.0.insert(at, topic.to_string());
        true
    }

    /// Removes `topic`; returns whether it was there.
    pub fn remove(&mut self, topic: &str) -> bool {
        match self.position(topic) {
            Ok(at) => {
                self.0.remove(at);
                true
            }
            Err(_) => false,
        }
    }

    /// Whether it includes `topic`.
    pub fn contains(&self, topic: &str) -> bool {
        self.position(topic).is_ok()
    }

    /// The topics, ordered by name.
    pub fn iter(&self) -> impl Iterator<Item = &String> {
        self.0.iter()
    }

    /// The topics, ordered by name, as a list of their own.
    pub fn to_vec(&self) -> Vec<String> {
        self.0.clone()
    }

    fn position(&self, topic: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|name| name.as_str().cmp(topic))
    }
}

#[cfg(test)]
mod tests {
    use super::Subscriptions;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        // Whatever a member subscribes and leaves, in whatever order, it
        // holds what a `BTreeSet` would: each topic once, in order, and
        // every insert and remove says what the set's would.
        #[test]
        fn it_behaves_as_an_ordered_set(
            steps in prop::collection::vec((any::<bool>(), "[a-d]{0,2}"), 0..40),
        ) {
            let (mut topics, mut model) = (Subscriptions::default(), BTreeSet::new());
            for (subscribe, topic) in steps {
                if subscribe {
                    prop_assert_eq!(topics.insert(&topic), model.insert(topic.clone()));
                } else {
                    prop_assert_eq!(topics.remove(&topic), model.remove(&topic));
                }
                prop_assert_eq!(topics.contains(&topic), model.contains(&topic));
            }
            prop_assert_eq!(topics.to_vec(), model.into_iter().collect::<Vec<_>>());
        }
    }

    #[test]
    fn keeps_each_topic_once_in_order() {
        let mut topics = Subscriptions::default();
        assert!(topics.insert("b"));
        assert!(topics.insert("a"));
        assert!(topics.insert("c"));
        assert!(!topics.insert("b"));
        assert_eq!(topics.to_vec(), ["a", "b", "c"]);
        assert!(topics.contains("c"));
        assert!(!topics.contains("d"));
    }

    #[test]
    fn remove_says_whether_the_topic_was_there() {
        let mut topics = Subscriptions::default();
        topics.insert("a");
        topics.insert("b");
        assert!(topics.remove("a"));
        assert!(!topics.remove("a"));
        assert_eq!(topics.to_vec(), ["b"]);
    }

    #[test]
    fn a_first_topic_takes_room_for_one() {
        let mut topics = Subscriptions::default();
        topics.insert("only");
        assert!(topics.0.capacity() >= 1 && topics.0.capacity() < 4);
        topics.insert("second");
        topics.insert("third");
        assert!(topics.0.capacity() >= 3);
    }
}

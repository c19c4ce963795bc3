//! Topic routing through a trie of binding-key words, so that matching costs grow with the
//! routing key's length, not with the number of bindings.
//!
//! Words are split on `.`; `*` matches exactly one word, `#` zero or more. As in RabbitMQ,
//! the empty routing key has zero words and `a..b` has an empty middle word.

use std::collections::HashMap;

#[derive(Debug)]
pub struct TopicTrie<D> {
    root: Node<D>,
}

#[derive(Debug)]
struct Node<D> {
    words: HashMap<Box<[u8]>, Node<D>>,
    star: Option<Box<Node<D>>>,
    hash: Option<Box<Node<D>>>,
    /// Destinations of binding keys ending here.
    dests: Vec<D>,
}

impl<D> Default for Node<D> {
    fn default() -> Self {
        Self {
            words: HashMap::new(),
            star: None,
            hash: None,
            dests: Vec::new(),
        }
    }
}

impl<D> Default for TopicTrie<D> {
    fn default() -> Self {
        Self {
            root: Node::default(),
        }
    }
}

fn words(key: &[u8]) -> Vec<&[u8]> {
    if key.is_empty() {
        Vec::new()
    } else {
        key.split(|&b| b == b'.').collect()
    }
}

impl<D: PartialEq> TopicTrie<D> {
    pub fn insert(&mut self, binding_key: &[u8], dest: D) {
        let mut node = &mut self.root;
        for w in words(binding_key) {
            node = match w {
                b"*" => node.star.get_or_insert_with(Box::default),
                b"#" => node.hash.get_or_insert_with(Box::default),
                _ => node.words.entry(w.into()).or_default(),
            };
        }
        node.dests.push(dest);
    }

    pub fn remove(&mut self, binding_key: &[u8], dest: &D) {
        fn go<D: PartialEq>(node: &mut Node<D>, ws: &[&[u8]], dest: &D) -> bool {
            match ws.split_first() {
                None => {
                    if let Some(p) = node.dests.iter().position(|d| d == dest) {
                        node.dests.remove(p);
                    }
                }
                Some((w, rest)) => {
                    let child = match *w {
                        b"*" => node.star.as_deref_mut(),
                        b"#" => node.hash.as_deref_mut(),
                        _ => node.words.get_mut(*w),
                    };
                    if let Some(child) = child
                        && go(child, rest, dest)
                    {
                        match *w {
                            b"*" => node.star = None,
                            b"#" => node.hash = None,
                            _ => {
                                node.words.remove(*w);
                            }
                        }
                    }
                }
            }
            node.dests.is_empty()
                && node.words.is_empty()
                && node.star.is_none()
                && node.hash.is_none()
        }
        go(&mut self.root, &words(binding_key), dest);
    }

    /// Calls `f` for each destination whose binding key matches (a destination bound by
    /// several matching keys is reported more than once; callers deduplicate).
    pub fn matches<'a>(&'a self, routing_key: &[u8], f: &mut impl FnMut(&'a D)) {
        let ws = words(routing_key);
        Self::walk(&self.root, &ws, f);
    }

    fn walk<'a>(node: &'a Node<D>, ws: &[&[u8]], f: &mut impl FnMut(&'a D)) {
        if let Some(h) = &node.hash {
            // `#` consumes zero or more words.
            for i in 0..=ws.len() {
                Self::walk(h, &ws[i..], f);
            }
        }
        match ws.split_first() {
            None => node.dests.iter().for_each(&mut *f),
            Some((w, rest)) => {
                if let Some(child) = node.words.get(*w) {
                    Self::walk(child, rest, f);
                }
                if let Some(s) = &node.star {
                    Self::walk(s, rest, f);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TopicTrie;

    fn routes(pattern: &str, key: &str) -> bool {
        let mut t = TopicTrie::default();
        t.insert(pattern.as_bytes(), 1);
        let mut hit = false;
        t.matches(key.as_bytes(), &mut |_| hit = true);
        hit
    }

    #[test]
    fn rabbitmq_topic_semantics() {
        assert!(routes("a.b", "a.b"));
        assert!(!routes("a.b", "a.b.c"));
        assert!(routes("a.*", "a.b"));
        assert!(!routes("a.*", "a"));
        assert!(routes("a.#", "a"));
        assert!(routes("a.#", "a.b.c"));
        assert!(routes("#", ""));
        assert!(routes("#.#", ""));
        assert!(routes("", ""));
        assert!(!routes("*", ""));
        assert!(routes("*.*", "."));
        assert!(routes("a.*.b", "a..b"));
        assert!(routes("a.#.b", "a.b"));
        assert!(routes("a.#.b", "a.x.y.b"));
        assert!(!routes("a.#.b", "a.x.y.c"));
        assert!(routes("#.b", "b"));
        assert!(!routes("a#", "ab"));
        assert!(routes("a#", "a#"));
    }

    #[test]
    fn remove_prunes() {
        let mut t = TopicTrie::default();
        t.insert(b"a.*.c", 1);
        t.insert(b"a.#", 2);
        t.remove(b"a.*.c", &1);
        let mut got = vec![];
        t.matches(b"a.b.c", &mut |d| got.push(*d));
        assert_eq!(got, vec![2]);
    }
}

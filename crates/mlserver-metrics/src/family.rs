//! A metric with labels: one child value per distinct set of label values.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// foldhash: children are looked up on every request, and SipHash was most
/// of a lookup's cost. Its per-process random seed keeps label values sent
/// by clients (model names) from being chosen to collide.
type ChildMap<M> = HashMap<String, Kept<M>, foldhash::fast::RandomState>;

/// Label values joined by a byte that cannot appear in them unescaped in
/// practice; used as the children map's key so a lookup needs one string.
const SEPARATOR: char = '\u{1f}';

/// All children of one metric name. Cheap to clone (shared).
///
/// Hot paths should call [`Family::with`] once and keep the returned child:
/// recording on it is a single atomic operation.
pub struct Family<M> {
    inner: Arc<FamilyInner<M>>,
}

/// The children map's key for some label values.
fn child_key(values: &[&str]) -> String {
    let mut key = String::with_capacity(values.iter().map(|v| v.len() + 1).sum());
    write_key(&mut key, values);
    key
}

fn write_key(key: &mut String, values: &[&str]) {
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            key.push(SEPARATOR);
        }
        key.push_str(v);
    }
}

thread_local! {
    /// Where lookups build their key, so that finding an existing child (the
    /// recording path of every request) allocates nothing.
    static LOOKUP_KEY: RefCell<String> = const { RefCell::new(String::new()) };
}

/// A child's label values and its value.
type Child<M> = (Vec<String>, Arc<M>);

/// A child as kept: also when it was made, for the exposition's order.
type Kept<M> = (Vec<String>, Arc<M>, u64);

pub(crate) struct FamilyInner<M> {
    pub(crate) label_names: Vec<String>,
    make: Box<dyn Fn() -> M + Send + Sync>,
    children: RwLock<ChildMap<M>>,
    /// Children made so far (the next one's place in the exposition).
    made: std::sync::atomic::AtomicU64,
}

impl<M> Clone for Family<M> {
    fn clone(&self) -> Self {
        Family {
            inner: self.inner.clone(),
        }
    }
}

impl<M: Send + Sync + 'static> Family<M> {
    pub(crate) fn new(
        label_names: Vec<String>,
        make: impl Fn() -> M + Send + Sync + 'static,
    ) -> Self {
        Family {
            inner: Arc::new(FamilyInner {
                label_names,
                make: Box::new(make),
                children: RwLock::new(ChildMap::default()),
                made: std::sync::atomic::AtomicU64::new(0),
            }),
        }
    }

    /// The child for these label values (in the order the family's label
    /// names were declared), created on first use.
    ///
    /// # Panics
    /// If the number of values differs from the number of label names: that
    /// is a bug at the call site, not a runtime condition.
    pub fn with(&self, values: &[&str]) -> Arc<M> {
        assert_eq!(
            values.len(),
            self.inner.label_names.len(),
            "metric labels {:?} given values {:?}",
            self.inner.label_names,
            values
        );
        let found = LOOKUP_KEY.with_borrow_mut(|key| {
            key.clear();
            write_key(key, values);
            let children = self.inner.children.read().expect("metric lock");
            let found = children
                .get(key.as_str())
                .map(|(_, child, _)| child.clone());
            if key.capacity() > 4096 {
                // A client's odd, long model name is not kept per thread.
                *key = String::new();
            }
            found
        });
        if let Some(child) = found {
            return child;
        }
        let mut children = self.inner.children.write().expect("metric lock");
        children
            .entry(child_key(values))
            .or_insert_with(|| {
                let place = self
                    .inner
                    .made
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                (
                    values.iter().map(|v| v.to_string()).collect(),
                    Arc::new((self.inner.make)()),
                    place,
                )
            })
            .1
            .clone()
    }

    /// Drops the child for these label values (e.g. an unloaded model's).
    pub fn remove(&self, values: &[&str]) {
        let key = child_key(values);
        self.inner
            .children
            .write()
            .expect("metric lock")
            .remove(&key);
    }
}

impl<M> Family<M> {
    pub(crate) fn inner(&self) -> &Arc<FamilyInner<M>> {
        &self.inner
    }
}

impl<M> FamilyInner<M> {
    /// Children in the order they were made, as Python's client (and
    /// MLServer's multiprocess collector) lists them.
    pub(crate) fn children(&self) -> Vec<Child<M>> {
        let children = self.children.read().expect("metric lock");
        let mut all: Vec<_> = children.values().cloned().collect();
        all.sort_by_key(|(_, _, place)| *place);
        all.into_iter()
            .map(|(values, child, _)| (values, child))
            .collect()
    }
}

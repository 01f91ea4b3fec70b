//! Values shared by every database that has the same one — statement texts, parsed statements —
//! so the thousand databases of one application keep one copy of each. A value lives while some
//! database holds it; the table of values forgets the others as it grows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// Values by their text.
pub struct Interned<T: ?Sized> {
    values: Mutex<Table<T>>,
}

struct Table<T: ?Sized> {
    by_text: HashMap<Box<str>, Weak<T>>,
    /// Values nobody holds are dropped when the table has this many.
    sweep_at: usize,
}

/// The table is swept first when it reaches this many values, then at twice what the last sweep
/// kept.
const FIRST_SWEEP: usize = 64;

impl<T: ?Sized> Interned<T> {
    pub fn new() -> Self {
        Self {
            values: Mutex::new(Table {
                by_text: HashMap::new(),
                sweep_at: FIRST_SWEEP,
            }),
        }
    }

    /// The value for `text` some database holds, else `make(text)`, remembered.
    pub fn get(&self, text: &str, make: impl FnOnce(&str) -> Arc<T>) -> Arc<T> {
        let mut table = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(value) = table.by_text.get(text).and_then(Weak::upgrade) {
            return value;
        }
        let value = make(text);
        if table.by_text.len() >= table.sweep_at {
            table.by_text.retain(|_, value| value.strong_count() > 0);
            table.sweep_at = (table.by_text.len() * 2).max(FIRST_SWEEP);
        }
        table.by_text.insert(text.into(), Arc::downgrade(&value));
        value
    }

    /// Values remembered, held or not (until the next sweep).
    pub fn len(&self) -> usize {
        let table = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        table.by_text.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: ?Sized> Default for Interned<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_text_gives_the_same_value_while_someone_holds_it() {
        let texts: Interned<str> = Interned::new();
        let a = texts.get("SELECT 1", |t| Arc::from(t));
        let b = texts.get("SELECT 1", |_| unreachable!("already there"));
        assert!(Arc::ptr_eq(&a, &b));
        drop((a, b));
        let again = texts.get("SELECT 1", |t| Arc::from(t.to_lowercase()));
        assert_eq!(&*again, "select 1", "made again once nobody held it");
    }

    #[test]
    fn values_nobody_holds_are_forgotten_as_the_table_grows() {
        let texts: Interned<str> = Interned::new();
        let held: Vec<Arc<str>> = (0..10)
            .map(|k| texts.get(&k.to_string(), |t| Arc::from(t)))
            .collect();
        for k in 10..1000 {
            texts.get(&k.to_string(), |t| Arc::from(t));
        }
        assert!(texts.len() < 200, "{} remembered", texts.len());
        assert!(Arc::ptr_eq(&held[3], &texts.get("3", |_| unreachable!())));
    }
}

//! Rendered node JSON, cached by node version.
//!
//! Nova and other integrations poll full node listings; rendering 1000
//! nodes (decode 70 columns, mask secrets, gate fields, serialise) costs far
//! more than asking the store which nodes match and at which `version`. So a
//! listing asks only for `(uuid, version)` pairs and reuses the JSON of every
//! node whose version and rendering (microversion, base URL, conductor
//! membership, shape) are unchanged. Versions come from the store, so the
//! cache is exact even when other processes write.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use uuid::Uuid;

/// Which rendering of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    /// Every field (show, detailed listings).
    Full,
    /// The default fields of a plain listing.
    ListDefault,
}

/// Everything besides the node itself that the rendering depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    pub minor: u16,
    pub base_url: Arc<str>,
    /// Changes whenever the set of live conductors (and so `conductor`) does.
    pub cluster_generation: u64,
}

struct Entry {
    version: i64,
    variant: Variant,
    json: Bytes,
}

/// The cache. Bounded: past `capacity` entries it starts over.
pub struct ViewCache {
    entries: RwLock<HashMap<(Uuid, Shape), Entry>>,
    capacity: usize,
}

impl ViewCache {
    pub fn new(capacity: usize) -> Self {
        Self { entries: RwLock::new(HashMap::new()), capacity }
    }

    /// The cached JSON of `uuid` at `version`, if rendered the same way.
    pub fn get(&self, uuid: Uuid, shape: Shape, version: i64, variant: &Variant) -> Option<Bytes> {
        let entries = self.entries.read().ok()?;
        let entry = entries.get(&(uuid, shape))?;
        (entry.version == version && entry.variant == *variant).then(|| entry.json.clone())
    }

    pub fn put(&self, uuid: Uuid, shape: Shape, version: i64, variant: &Variant, json: Bytes) {
        let Ok(mut entries) = self.entries.write() else { return };
        if entries.len() >= self.capacity && !entries.contains_key(&(uuid, shape)) {
            entries.clear();
        }
        entries.insert((uuid, shape), Entry { version, variant: variant.clone(), json });
    }

    /// Drops a deleted node's entries.
    pub fn forget(&self, uuid: Uuid) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(&(uuid, Shape::Full));
            entries.remove(&(uuid, Shape::ListDefault));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_only_at_the_same_version_and_variant() {
        let cache = ViewCache::new(2);
        let variant = Variant { minor: 115, base_url: "http://a".into(), cluster_generation: 1 };
        let uuid = Uuid::new_v4();
        cache.put(uuid, Shape::Full, 3, &variant, Bytes::from_static(b"{}"));
        assert!(cache.get(uuid, Shape::Full, 3, &variant).is_some());
        assert!(cache.get(uuid, Shape::Full, 4, &variant).is_none());
        assert!(cache.get(uuid, Shape::ListDefault, 3, &variant).is_none());
        let other = Variant { minor: 1, ..variant.clone() };
        assert!(cache.get(uuid, Shape::Full, 3, &other).is_none());
        // Capacity: a third entry starts over.
        cache.put(Uuid::new_v4(), Shape::Full, 1, &variant, Bytes::new());
        cache.put(Uuid::new_v4(), Shape::Full, 1, &variant, Bytes::new());
        assert!(cache.get(uuid, Shape::Full, 3, &variant).is_none());
        cache.forget(uuid);
    }
}

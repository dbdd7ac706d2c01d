//! Watch events cut down to the changes a subscriber reads. A controller woken by every write
//! to another kind's objects does work per write; most writes are status steps that change
//! nothing it reads. A fingerprint of what it reads decides: an object's event passes when
//! its fingerprint changed, or when it is deleted or cannot be read.

use std::collections::HashMap;

use futures::{Stream, StreamExt, future};
use kube::{Resource, ResourceExt, core::DeserializeGuard, runtime::watcher};

/// The objects of `events` whose [`fingerprint`](Fn) changed since their last event, every
/// deletion, and every object that cannot be read.
pub fn relevant<K, S>(
    events: S,
    fingerprint: impl Fn(&K) -> u64,
) -> impl Stream<Item = Result<DeserializeGuard<K>, watcher::Error>>
where
    K: Resource,
    DeserializeGuard<K>: Resource,
    S: Stream<Item = Result<watcher::Event<DeserializeGuard<K>>, watcher::Error>>,
{
    let mut seen: HashMap<(Option<String>, String), u64> = HashMap::new();
    events.filter_map(move |event| {
        let passed = match event {
            Err(e) => Some(Err(e)),
            Ok(watcher::Event::Delete(object)) => {
                seen.remove(&(object.namespace(), object.name_any()));
                Some(Ok(object))
            }
            Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) => {
                let changed = match &object.0 {
                    Ok(o) => {
                        let now = fingerprint(o);
                        seen.insert((object.namespace(), object.name_any()), now) != Some(now)
                    }
                    Err(_) => true,
                };
                changed.then_some(Ok(object))
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
        };
        future::ready(passed)
    })
}

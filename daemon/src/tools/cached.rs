//! `list_resources` pages, and serving them from the leader's watch stores.
//!
//! A listing is sorted by (namespace, name) and cut into pages of `limit`
//! items; the `continue` token of a truncated page is the position of its
//! last item, so the next call starts right after it whether it is served
//! from the stores or the apiserver, and objects created or deleted between
//! pages neither repeat nor shift the rest.
//!
//! The watch stores already hold every Pod, Deployment, ReplicaSet,
//! StatefulSet, DaemonSet, Job, Node and Namespace in scope (stripped, see
//! [`crate::watch::strip`], but with everything a summary reads), so a
//! listing of those kinds without a label selector is a walk over `Arc`s in
//! memory: no apiserver round trip, no decoding of thousands of objects, and
//! only the returned page is summarised.

use std::sync::Arc;

use kube::Resource;

use super::read::{ItemSummary, summarize_value};
use super::{ToolError, Tools};
use crate::cluster::Scope;
use crate::watch::{Cache, Stores};

/// Where a page starts: after the item at (namespace, name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub namespace: String,
    pub name: String,
}

impl Cursor {
    /// `namespace/name` (`/name` for cluster-scoped kinds): neither part can hold a `/`.
    pub fn token(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub fn parse(tool: &str, token: &str) -> Result<Self, ToolError> {
        let bad =
            || ToolError::invalid(tool, format!("continue must be a token from a previous listing, got `{token}`"));
        let (namespace, name) = token.split_once('/').ok_or_else(bad)?;
        if name.is_empty() || name.contains('/') || token.len() > 512 {
            return Err(bad());
        }
        Ok(Self { namespace: namespace.to_owned(), name: name.to_owned() })
    }

    fn before(&self, namespace: &str, name: &str) -> bool {
        (self.namespace.as_str(), self.name.as_str()) < (namespace, name)
    }
}

/// A page of summaries and the token of the next page, if any.
pub type Page = (Vec<ItemSummary>, Option<String>);

/// Sort by (namespace, name), skip to after `after`, keep `limit`; the token of the next page if more remain.
pub fn page<T>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> (&str, &str),
    after: Option<&Cursor>,
    limit: usize,
) -> (Vec<T>, Option<String>) {
    if let Some(c) = after {
        items.retain(|i| {
            let (ns, name) = key(i);
            c.before(ns, name)
        });
    }
    items.sort_unstable_by(|a, b| key(a).cmp(&key(b)));
    let more = items.len() > limit;
    items.truncate(limit);
    let next = if more {
        items.last().map(|i| {
            let (namespace, name) = key(i);
            Cursor { namespace: namespace.to_owned(), name: name.to_owned() }.token()
        })
    } else {
        None
    };
    (items, next)
}

fn key<K: Resource>(o: &Arc<K>) -> (&str, &str) {
    let m = o.meta();
    (m.namespace.as_deref().unwrap_or_default(), m.name.as_deref().unwrap_or_default())
}

/// One page of a kind's store, summarised.
fn from_store<K>(
    kind: &str,
    stores: &Stores<K>,
    namespace: Option<&str>,
    scope: &Scope,
    after: Option<&Cursor>,
    limit: usize,
) -> Result<Page, ToolError>
where
    K: Resource<DynamicType = ()> + Clone + serde::Serialize + 'static,
{
    let mut objects = Vec::new();
    for (part_ns, store) in &stores.parts {
        if let (Some(want), Some(have)) = (namespace, part_ns.as_deref())
            && want != have
        {
            continue;
        }
        objects.extend(store.state().into_iter().filter(|o| {
            let ns = o.meta().namespace.as_deref().unwrap_or_default();
            namespace.is_none_or(|want| want == ns) && (ns.is_empty() || scope.namespace_visible(ns))
        }));
    }
    if kind == "Namespace" {
        objects.retain(|o| scope.namespace_visible(o.meta().name.as_deref().unwrap_or_default()));
    }
    let (objects, next) = page(objects, key, after, limit);
    let mut items = Vec::with_capacity(objects.len());
    for o in &objects {
        let data = serde_json::to_value(&**o)
            .map_err(|e| ToolError::Unavailable { what: "object encoding", why: e.to_string() })?;
        items.push(summarize_value(kind, o.meta(), &data));
    }
    Ok((items, next))
}

impl Tools {
    /// The synced watch stores of this process, if the watchers run here (the leader).
    pub fn watch_cache(&self) -> &crate::watch::SharedCache {
        &self.watch_cache
    }

    /// A page of `kind` from the watch stores; `None` when they do not hold that kind.
    pub(crate) fn list_cached(
        &self,
        kind: &str,
        namespace: Option<&str>,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Option<Page>, ToolError> {
        let Some(cache) = self.watch_cache.get() else { return Ok(None) };
        let scope = &self.cluster.scope;
        let Cache { pods, replicasets, deployments, statefulsets, daemonsets, jobs, nodes, namespaces } = &cache;
        let page = match kind {
            "Pod" => from_store(kind, pods, namespace, scope, after, limit)?,
            "Deployment" => from_store(kind, deployments, namespace, scope, after, limit)?,
            "ReplicaSet" => from_store(kind, replicasets, namespace, scope, after, limit)?,
            "StatefulSet" => from_store(kind, statefulsets, namespace, scope, after, limit)?,
            "DaemonSet" => from_store(kind, daemonsets, namespace, scope, after, limit)?,
            "Job" => from_store(kind, jobs, namespace, scope, after, limit)?,
            // Every cluster has nodes and namespaces: an empty store is one that is not watched
            // (watch.namespace_labels: false), or not filled yet; the apiserver answers then.
            "Node" if !nodes.is_empty() => from_store(kind, nodes, None, scope, after, limit)?,
            "Namespace" if !namespaces.is_empty() => from_store(kind, namespaces, None, scope, after, limit)?,
            _ => return Ok(None),
        };
        Ok(Some(page))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn names(items: &[(&str, &str)]) -> Vec<String> {
        items.iter().map(|(ns, n)| format!("{ns}/{n}")).collect()
    }

    fn key<'a>(i: &'a (&str, &str)) -> (&'a str, &'a str) {
        (i.0, i.1)
    }

    #[test]
    fn pages_walk_every_item_once_in_order() {
        let all: Vec<(&str, &str)> = vec![("b", "x"), ("a", "z"), ("a", "y"), ("b", "a"), ("c", "c")];
        let (first, next) = page(all.clone(), key, None, 2);
        assert_eq!(names(&first), ["a/y", "a/z"]);
        assert_eq!(next.as_deref(), Some("a/z"));
        let cursor = Cursor::parse("t", next.as_deref().unwrap()).unwrap();
        let (second, next) = page(all.clone(), key, Some(&cursor), 2);
        assert_eq!(names(&second), ["b/a", "b/x"]);
        let cursor = Cursor::parse("t", next.as_deref().unwrap()).unwrap();
        let (third, next) = page(all.clone(), key, Some(&cursor), 2);
        assert_eq!(names(&third), ["c/c"]);
        assert!(next.is_none(), "the last page has no continue token");
        // Exactly `limit` left: no token either.
        let (exact, next) = page(all, key, None, 5);
        assert_eq!(exact.len(), 5);
        assert!(next.is_none());
    }

    #[test]
    fn an_item_deleted_between_pages_does_not_shift_the_next_page() {
        let cursor = Cursor { namespace: "a".into(), name: "m".into() };
        let remaining: Vec<(&str, &str)> = vec![("a", "n"), ("a", "a"), ("b", "b")];
        let (items, _) = page(remaining, key, Some(&cursor), 10);
        assert_eq!(names(&items), ["a/n", "b/b"]);
    }

    #[test]
    fn cursor_tokens() {
        let c = Cursor { namespace: String::new(), name: "sim-node-1".into() };
        assert_eq!(c.token(), "/sim-node-1");
        assert_eq!(Cursor::parse("t", "/sim-node-1").unwrap(), c);
        assert_eq!(Cursor::parse("t", "shop/web-1").unwrap().namespace, "shop");
        for bad in ["", "web", "shop/", "a/b/c"] {
            let err = Cursor::parse("list_resources", bad).unwrap_err().to_string();
            assert!(err.contains("continue must be a token"), "{bad}: {err}");
        }
    }

    /// Stores as the watchers leave them after their first list: `pods` in the pod store, the others empty.
    pub(crate) fn cache_with(pods: Vec<k8s_openapi::api::core::v1::Pod>) -> Cache {
        use crate::watch::strip::Strip;
        use kube::runtime::reflector;
        use kube::runtime::watcher::Event;
        fn stores<K>(objects: Vec<K>) -> Stores<K>
        where
            K: Resource<DynamicType = ()> + Clone + Strip + 'static,
        {
            let (store, mut writer) = reflector::store::<K>();
            writer.apply_watcher_event(&Event::Init);
            for mut o in objects {
                o.strip();
                writer.apply_watcher_event(&Event::InitApply(o));
            }
            writer.apply_watcher_event(&Event::InitDone);
            Stores { parts: vec![(None, store)] }
        }
        Cache {
            pods: stores(pods.into_iter().map(crate::watch::strip::CachedPod::from).collect()),
            replicasets: stores(Vec::new()),
            deployments: stores(Vec::new()),
            statefulsets: stores(Vec::new()),
            daemonsets: stores(Vec::new()),
            jobs: stores(Vec::new()),
            nodes: stores(Vec::new()),
            namespaces: stores(Vec::new()),
        }
    }

    #[tokio::test]
    async fn pod_listings_come_from_the_watch_stores_page_by_page() {
        use crate::model::identity::Role;
        use crate::tools::testing::{caller, shop_fixture, tools};
        use serde_json::json;
        let api = shop_fixture();
        let (tools, _) = tools(&api);
        let viewer = caller(Role::Viewer);
        let list = |args: serde_json::Value| {
            let tools = tools.clone();
            let viewer = viewer.clone();
            async move { tools.call(&viewer, "list_resources", args).await.expect("list_resources") }
        };
        let from_apiserver = list(json!({"kind": "Pod", "namespace": "shop"})).await;
        assert!(from_apiserver["items"].as_array().is_some_and(|i| !i.is_empty()), "{from_apiserver}");

        let mut pods: Vec<k8s_openapi::api::core::v1::Pod> = api.all_of("Pod");
        let only_cached = |ns: &str, name: &str| {
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns, "labels": {"app": "web"}},
                "status": {"phase": "Pending"}}))
            .unwrap()
        };
        tools.watch_cache().set(Some(cache_with(pods.clone())));
        // Same summaries from the stripped cached pods as from the apiserver's whole objects.
        assert_eq!(list(json!({"kind": "Pod", "namespace": "shop"})).await, from_apiserver);

        pods.push(only_cached("shop", "zz-cached"));
        pods.push(only_cached("hidden", "excluded"));
        tools.watch_cache().set(Some(cache_with(pods.clone())));
        let all = list(json!({"kind": "pods"})).await;
        let names: Vec<&str> = all["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
        assert!(names.contains(&"zz-cached"), "served from the stores: {names:?}");
        assert!(!names.contains(&"excluded"), "an excluded namespace does not exist: {names:?}");
        assert_eq!(all["truncated"], false);
        assert!(all.get("continue").is_none());

        // Page by page, one item each: every pod once, in order.
        let mut paged = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut args = json!({"kind": "Pod", "limit": 1});
            if let Some(t) = &token {
                args["continue"] = json!(t);
            }
            let page = list(args).await;
            paged.extend(page["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap().to_owned()));
            assert_eq!(page["truncated"], page.get("continue").is_some());
            match page.get("continue").and_then(|c| c.as_str()) {
                Some(t) => token = Some(t.to_owned()),
                None => break,
            }
        }
        assert_eq!(paged, names);

        // A label selector is the apiserver's job: the pod only in the stores is not there.
        let selected = list(json!({"kind": "Pod", "namespace": "shop", "label_selector": "app=web"})).await;
        assert!(!selected.to_string().contains("zz-cached"), "{selected}");
        // Without synced stores, the apiserver answers again.
        tools.watch_cache().set(None);
        assert_eq!(list(json!({"kind": "Pod", "namespace": "shop"})).await, from_apiserver);

        let err =
            tools.call(&viewer, "list_resources", json!({"kind": "Pod", "continue": "no-slash"})).await.unwrap_err();
        assert!(err.to_string().contains("continue must be a token"), "{err}");
    }
}

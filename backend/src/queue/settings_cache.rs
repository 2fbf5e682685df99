//! Scripts' limits and retry policies, read once per script version
//! instead of once per run: at thousands of runs a second the read is a
//! database round trip per run for a value that changes only when the user
//! deploys, and every deploy makes a new version.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::store::{ScriptSettings, Store};

/// How long a read is kept. A deploy makes a new version, whose runs read
/// afresh at once; this only bounds how long an entry can live.
const FRESH_FOR: Duration = Duration::from_secs(30);
/// Entries beyond this are dropped wholesale (they are cheap to re-read).
const MAX_ENTRIES: usize = 10_000;

/// (script id, version) → when it was read, and what.
type Entries = HashMap<(String, i64), (Instant, Option<ScriptSettings>)>;

#[derive(Default)]
pub(super) struct SettingsCache {
    entries: Mutex<Entries>,
}

impl SettingsCache {
    /// The script's settings; `None` when it has none or the read failed
    /// (the run then gets the server's defaults, as before).
    pub(super) async fn get(
        &self,
        store: &dyn Store,
        script_id: &str,
        version: i64,
    ) -> Option<ScriptSettings> {
        let key = (script_id.to_string(), version);
        if let Some((read_at, settings)) = self.lock().get(&key)
            && read_at.elapsed() < FRESH_FOR
        {
            return *settings;
        }
        let settings = store.script_settings(script_id).await.ok().flatten();
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), settings));
        settings
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewScriptVersion, ScriptLimits};

    fn version(user_id: &str, timeout_ms: i64) -> NewScriptVersion {
        NewScriptVersion {
            user_id: user_id.into(),
            name: "s".into(),
            component: b"\0asm".to_vec(),
            content_hash: "ab".repeat(32),
            metadata: serde_json::json!({ "handlers": [], "integrations": [] }),
            triggers: Vec::new(),
            retries: None,
            limits: Some(ScriptLimits {
                timeout_ms: Some(timeout_ms),
                memory_bytes: None,
                output_bytes: None,
            }),
            caps: Default::default(),
        }
    }

    #[tokio::test]
    async fn a_new_version_reads_its_own_settings_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::connect(&crate::config::sqlite_url(dir.path()))
            .await
            .unwrap();
        let user = store.create_user("ada", "hash").await.unwrap();
        let cache = SettingsCache::default();
        let timeout = |s: Option<ScriptSettings>| s.unwrap().limits.timeout_ms;

        let v1 = store
            .create_script_version(&version(&user.id, 1_000))
            .await
            .unwrap();
        assert_eq!(
            timeout(cache.get(store.as_ref(), &v1.script_id, 1).await),
            Some(1_000)
        );
        // Deploying again changes the settings and the version: runs of the
        // new version see the new limits without waiting for the cache.
        store
            .create_script_version(&version(&user.id, 2_000))
            .await
            .unwrap();
        assert_eq!(
            timeout(cache.get(store.as_ref(), &v1.script_id, 2).await),
            Some(2_000)
        );
        // Runs of the old version keep what they were read with.
        assert_eq!(
            timeout(cache.get(store.as_ref(), &v1.script_id, 1).await),
            Some(1_000)
        );
        // An unknown script has no settings (the server's defaults apply).
        assert!(cache.get(store.as_ref(), "scr_none", 1).await.is_none());
    }
}

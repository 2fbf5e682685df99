//! The run side of script state, against committed state in memory.

use super::*;

/// Committed state in memory.
#[derive(Default)]
struct Memory(BTreeMap<String, String>);

#[async_trait]
impl CommittedState for Memory {
    async fn entries_by_keys(&self, keys: &[&str]) -> Result<Vec<StateEntry>, String> {
        Ok(keys
            .iter()
            .filter_map(|k| self.0.get(*k).map(|v| entry(k, v)))
            .collect())
    }
    async fn entries(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<StateEntry>, String> {
        Ok(self
            .0
            .iter()
            .filter(|(k, _)| k.starts_with(prefix) && after.is_none_or(|a| k.as_str() > a))
            .take(limit as usize)
            .map(|(k, v)| entry(k, v))
            .collect())
    }
}

fn entry(key: &str, value: &str) -> StateEntry {
    StateEntry {
        key: key.into(),
        value: value.into(),
        expires_at: None,
        updated_at: 0,
        run_id: None,
    }
}

fn state(committed: &[(&str, &str)], quota: StateQuota) -> RunState {
    let memory = Memory(
        committed
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    RunState::new(Box::new(memory), quota, Masker::default())
}

async fn call(state: &RunState, op: &str, body: Value) -> (u16, Value) {
    let answer = state.handle(op, body.to_string().as_bytes()).await;
    (answer.status, serde_json::from_slice(&answer.body).unwrap())
}

#[tokio::test]
async fn a_run_reads_its_own_writes_and_hands_them_over_once() {
    let state = state(
        &[("cursor", "1"), ("seen/a", "true")],
        StateQuota::default(),
    );
    let (_, got) = call(&state, "get", json!({"keys": ["cursor", "nothing"]})).await;
    assert_eq!(
        got,
        json!({"values": {"cursor": {"value": 1, "expiresAt": null}, "nothing": null}})
    );
    let (status, _) = call(
        &state,
        "write",
        json!({"writes": [
            {"key": "cursor", "value": {"b": 2, "a": 1}},
            {"key": "seen/a", "value": null},
            {"key": "seen/b", "value": true, "ttlSeconds": 60}
        ]}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, got) = call(&state, "get", json!({"keys": ["cursor", "seen/a"]})).await;
    assert_eq!(got["values"]["cursor"]["value"], json!({"a": 1, "b": 2}));
    assert_eq!(got["values"]["seen/a"], Value::Null);
    let (_, listed) = call(&state, "list", json!({"prefix": "seen/"})).await;
    assert_eq!(listed["entries"].as_array().unwrap().len(), 1);
    assert_eq!(listed["entries"][0]["key"], "seen/b");
    assert_eq!(listed["next"], Value::Null);

    let writes = state.take_writes();
    let changes: Vec<(&str, Option<&str>)> = writes
        .changes
        .iter()
        .map(|c| (c.key.as_str(), c.value.as_deref()))
        .collect();
    assert_eq!(
        changes,
        [
            ("cursor", Some(r#"{"a":1,"b":2}"#)),
            ("seen/a", None),
            ("seen/b", Some("true"))
        ]
    );
    assert!(writes.changes[2].expires_at.is_some());
    assert!(
        writes.expected.is_empty(),
        "plain writes carry no condition"
    );
    assert!(state.take_writes().is_empty(), "taken once");
}

#[tokio::test]
async fn a_compare_and_set_is_checked_again_at_commit_only_against_the_committed_state() {
    let state = state(&[("lock", r#""free""#)], StateQuota::default());
    let (status, _) = call(
        &state,
        "write",
        json!({"writes": [
            {"key": "lock", "value": "mine", "expected": {"value": "free"}},
            {"key": "lock", "value": null, "expected": {"value": "mine"}},
            {"key": "new", "value": 1, "expected": {"value": null}}
        ]}),
    )
    .await;
    assert_eq!(status, 200);
    // A later batch: the run's own write is what it compares against.
    call(
        &state,
        "write",
        json!({"writes": [{"key": "new", "value": 2, "expected": {"value": 1}}]}),
    )
    .await;
    let writes = state.take_writes();
    assert_eq!(
        writes.expected,
        [
            ("lock".to_string(), Some(r#""free""#.to_string())),
            ("new".to_string(), None)
        ]
    );
    assert_eq!(writes.changes[0].value, None, "the lock was released");
    assert_eq!(writes.changes[1].value.as_deref(), Some("2"));
}

#[tokio::test]
async fn limits_are_refused_with_nothing_kept() {
    let quota = StateQuota {
        max_keys: 2,
        max_bytes: 1_000,
    };
    let state = state(&[("a", "1")], quota);
    let long_key = "k".repeat(MAX_STATE_KEY_BYTES + 1);
    let huge = "x".repeat(MAX_STATE_VALUE_BYTES);
    let many: Vec<String> = (0..=MAX_KEYS_PER_GET).map(|n| n.to_string()).collect();
    let set = |key: &str, value: Value| json!({"writes": [{"key": key, "value": value}]});
    for (op, body, status, code) in [
        ("write", set(&long_key, json!(1)), 400, "invalid_key"),
        ("write", set("", json!(1)), 400, "invalid_key"),
        ("write", set("a\nb", json!(1)), 400, "invalid_key"),
        ("write", set("big", json!(huge)), 413, "value_too_large"),
        (
            "write",
            json!({"writes": [{"key": "b", "value": 1, "ttlSeconds": 0}]}),
            400,
            "invalid_input",
        ),
        (
            "write",
            json!({"writes": [{"key": "b", "valu": 1}]}),
            400,
            "invalid_input",
        ),
        ("get", json!({"keys": many}), 400, "invalid_input"),
        ("get", json!({"keys": [""]}), 400, "invalid_key"),
        ("rename", json!({}), 404, "not_found"),
    ] {
        let (got, answer) = call(&state, op, body.clone()).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}"
        );
    }
    // A batch is kept whole or not at all.
    let (status, answer) = call(
        &state,
        "write",
        json!({"writes": [{"key": "b", "value": 1}, {"key": "c", "value": 1}, {"key": "d", "value": 1}]}),
    )
    .await;
    assert_eq!(status, 507);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("this run's writes would hold 3 keys; the most allowed is 2"),
        "{answer}"
    );
    assert!(state.take_writes().is_empty());
    assert_eq!(call(&state, "write", set("b", json!(1))).await.0, 200);
    // Replacing a key the run holds adds none; a removal frees one.
    assert_eq!(call(&state, "write", set("b", json!(2))).await.0, 200);
    let (status, _) = call(&state, "write", set("c", json!("y".repeat(1_000)))).await;
    assert_eq!(status, 507, "bytes");
    let writes = state.take_writes();
    let kept: Vec<_> = writes.changes.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(kept, ["b"]);
    assert_eq!(writes.changes[0].value.as_deref(), Some("2"));
}

#[tokio::test]
async fn a_credential_value_is_stored_masked() {
    let state = RunState::new(
        Box::new(Memory::default()),
        StateQuota::default(),
        Masker::new(["sk_live_0123456789"]),
    );
    let (status, _) = call(
        &state,
        "write",
        json!({"writes": [{"key": "note", "value": {"token": "sk_live_0123456789"}}]}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, got) = call(&state, "get", json!({"keys": ["note"]})).await;
    assert_eq!(
        got["values"]["note"]["value"]["token"],
        crate::execute::masking::MARKER
    );
    let (status, _) = call(
        &state,
        "write",
        json!({"writes": [{"key": "seen/sk_live_0123456789", "value": true}]}),
    )
    .await;
    assert_eq!(status, 200);
    let writes = state.take_writes();
    assert!(
        !writes.changes[0]
            .value
            .as_ref()
            .unwrap()
            .contains("sk_live")
    );
    assert!(
        writes.changes.iter().all(|c| !c.key.contains("sk_live")),
        "keys are masked too: {:?}",
        writes.changes
    );
}

//! The SDK's typed clients against the backend's integration definitions:
//! the same methods, the same parameter names, types and required sets,
//! and return types that only promise what the definitions' output schemas
//! describe. A renamed field or a new method on either side fails here.

use std::collections::BTreeSet;
use std::path::PathBuf;

use roost_sdk::integration::MethodSchema;
use serde_json::Value;

fn definition(id: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../backend/integrations")
        .join(format!("{id}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn sdk_methods(id: &str) -> Vec<MethodSchema> {
    match id {
        "gmail" => roost_sdk::gmail::method_schemas(),
        "slack" => roost_sdk::slack::method_schemas(),
        "messaging" => roost_sdk::messaging::method_schemas(),
        other => panic!("the SDK has no typed client for {other}"),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    /// Every parameter on both sides, same required set.
    Input,
    /// The SDK reads only what the definition describes, and requires no
    /// more than it guarantees.
    Output,
}

/// A schemars node with `$ref`s followed, `Option`'s null stripped, and an
/// enum of documented variants (`oneOf` of `const`s) read as an `enum`:
/// (type, node).
fn unwrap_sdk(root: &Value, node: &Value) -> (Option<String>, Value) {
    if let Some(reference) = node["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap();
        return unwrap_sdk(root, &root["$defs"][name]);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(options) = node[key].as_array() {
            let real: Vec<&Value> = options.iter().filter(|o| o["type"] != "null").collect();
            if real.len() == 1 {
                return unwrap_sdk(root, real[0]);
            }
            if real.iter().all(|o| o["const"].is_string()) {
                let values: Vec<Value> = real.iter().map(|o| o["const"].clone()).collect();
                return (
                    Some("string".into()),
                    serde_json::json!({ "type": "string", "enum": values }),
                );
            }
        }
    }
    let kind = match &node["type"] {
        Value::String(kind) => Some(kind.clone()),
        Value::Array(kinds) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|k| *k != "null")
            .map(str::to_string),
        _ => None,
    };
    (kind, node.clone())
}

fn names(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn strings(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

fn compare(
    at: &str,
    def: &Value,
    sdk_root: &Value,
    sdk: &Value,
    side: Side,
    problems: &mut Vec<String>,
) {
    let (sdk_kind, sdk) = unwrap_sdk(sdk_root, sdk);
    let sdk = &sdk;
    let Some(def_kind) = def["type"].as_str() else {
        return; // oneOf and friends: the SDK may model them its own way.
    };
    match sdk_kind.as_deref() {
        Some(kind) if kind == def_kind => {}
        Some("number") if def_kind == "integer" => {}
        other => {
            problems.push(format!(
                "{at}: the definition says {def_kind}, the SDK {other:?}"
            ));
            return;
        }
    }
    if def["enum"].is_array()
        && sdk["enum"].is_array()
        && strings(&def["enum"]) != strings(&sdk["enum"])
    {
        problems.push(format!(
            "{at}: values {:?} in the definition, {:?} in the SDK",
            strings(&def["enum"]),
            strings(&sdk["enum"])
        ));
    }
    if def_kind == "array" {
        compare(
            &format!("{at}[]"),
            &def["items"],
            sdk_root,
            &sdk["items"],
            side,
            problems,
        );
    }
    if def_kind != "object" || !def["properties"].is_object() {
        return;
    }
    let (def_props, sdk_props) = (names(&def["properties"]), names(&sdk["properties"]));
    for missing in def_props.difference(&sdk_props) {
        if side == Side::Input {
            problems.push(format!("{at}.{missing}: in the definition, not in the SDK"));
        }
    }
    for extra in sdk_props.difference(&def_props) {
        problems.push(format!("{at}.{extra}: in the SDK, not in the definition"));
    }
    let (def_required, sdk_required) = (strings(&def["required"]), strings(&sdk["required"]));
    match side {
        Side::Input if def_required != sdk_required => problems.push(format!(
            "{at}: required {def_required:?} in the definition, {sdk_required:?} in the SDK"
        )),
        Side::Output if !sdk_required.is_subset(&def_required) => problems.push(format!(
            "{at}: the SDK requires {:?}, which the definition does not guarantee",
            sdk_required.difference(&def_required).collect::<Vec<_>>()
        )),
        _ => {}
    }
    for name in def_props.intersection(&sdk_props) {
        compare(
            &format!("{at}.{name}"),
            &def["properties"][name],
            sdk_root,
            &sdk["properties"][name],
            side,
            problems,
        );
    }
}

/// Every difference between a definition and the SDK's client.
fn drift(definition: &Value, methods: &[MethodSchema]) -> Vec<String> {
    let id = definition["integrationId"].as_str().unwrap();
    let mut problems = Vec::new();
    let def_ids: BTreeSet<String> = definition["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    let sdk_ids: BTreeSet<String> = methods.iter().map(|m| m.id.to_string()).collect();
    for missing in def_ids.difference(&sdk_ids) {
        problems.push(format!(
            "{id}.{missing}: defined, but the SDK has no such method"
        ));
    }
    for extra in sdk_ids.difference(&def_ids) {
        problems.push(format!("{id}.{extra}: in the SDK, but not defined"));
    }
    for method in methods {
        let Some(def) = definition["methods"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == method.id)
        else {
            continue;
        };
        for (side, def_schema, sdk_schema, label) in [
            (Side::Input, &def["inputSchema"], &method.input, "input"),
            (Side::Output, &def["outputSchema"], &method.output, "output"),
        ] {
            let sdk = serde_json::to_value(sdk_schema).unwrap();
            compare(
                &format!("{id}.{}.{label}", method.id),
                def_schema,
                &sdk,
                &sdk,
                side,
                &mut problems,
            );
        }
    }
    problems
}

#[test]
fn the_sdk_clients_match_their_definitions() {
    for id in ["gmail", "slack", "messaging"] {
        let problems = drift(&definition(id), &sdk_methods(id));
        assert!(
            problems.is_empty(),
            "{id} drifted:\n{}",
            problems.join("\n")
        );
    }
}

#[test]
fn drift_on_either_side_is_caught() {
    let methods = sdk_methods("gmail");

    // A parameter renamed in the definition.
    let mut renamed = definition("gmail");
    let input = &mut renamed["methods"][0]["inputSchema"]["properties"];
    let q = input.as_object_mut().unwrap().remove("q").unwrap();
    input["query"] = q;
    let problems = drift(&renamed, &methods);
    assert!(
        problems
            .iter()
            .any(|p| p == "gmail.list_messages.input.query: in the definition, not in the SDK"),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p == "gmail.list_messages.input.q: in the SDK, not in the definition"),
        "{problems:?}"
    );

    // A type changed, a parameter made required, a method added.
    let mut changed = definition("gmail");
    changed["methods"][1]["outputSchema"]["properties"]["sizeEstimate"]["type"] = "string".into();
    changed["methods"][2]["inputSchema"]["required"] = serde_json::json!(["to", "subject"]);
    changed["methods"][1]["inputSchema"]["properties"]["format"]["enum"] =
        serde_json::json!(["minimal", "full", "metadata"]);
    changed["methods"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({ "id": "delete_message", "inputSchema": {}, "outputSchema": {} }));
    let problems = drift(&changed, &methods);
    assert!(
        problems
            .iter()
            .any(|p| p
                .starts_with("gmail.get_message.output.sizeEstimate: the definition says string")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("gmail.send_message.input: required")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p == "gmail.delete_message: defined, but the SDK has no such method"),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("gmail.get_message.input.format: values")),
        "{problems:?}"
    );

    // An output field the SDK reads that the definition does not describe.
    let mut shrunk = definition("slack");
    shrunk["methods"][1]["outputSchema"]["properties"]["channels"]["items"]["properties"]
        .as_object_mut()
        .unwrap()
        .remove("num_members");
    let problems = drift(&shrunk, &sdk_methods("slack"));
    assert_eq!(
        problems,
        vec![
            "slack.list_channels.output.channels[].num_members: in the SDK, not in the definition"
        ]
    );
}

//! Telling roost that a provider refused a credential (401): roost checks
//! it saw the refusal, then renews the credential once (an OAuth refresh)
//! or says where the user reconnects or replaces it.

use crate::http;

/// What roost answered a reported 401.
pub(crate) enum Refused {
    /// The credential was renewed: the run's new env values.
    Renewed(std::collections::BTreeMap<String, String>),
    /// It cannot be renewed: what the user must do, with the setup URL.
    Reconnect(String),
    /// No answer to act on (outside roost, or roost saw no 401).
    Unknown,
}

/// Tells roost the provider answered `integration`'s credential with 401.
pub(crate) fn report(integration: &str) -> Refused {
    let url = format!("http://roost.internal/v1/credentials/{integration}/refused");
    let Ok(response) = http::send("POST", &url, &[], &[]) else {
        return Refused::Unknown;
    };
    let Ok(answer) = response.json::<serde_json::Value>() else {
        return Refused::Unknown;
    };
    if response.status == 200 {
        let env = answer["env"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(var, value)| Some((var.clone(), value.as_str()?.to_string())))
            .collect();
        return Refused::Renewed(env);
    }
    match (
        answer["error"]["code"].as_str(),
        answer["error"]["message"].as_str(),
    ) {
        (Some("not_connected"), Some(message)) => Refused::Reconnect(message.to_string()),
        _ => Refused::Unknown,
    }
}

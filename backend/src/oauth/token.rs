//! The token responses roost reads: the standard fields, and which provider
//! account a connection belongs to where the provider says so (Slack's
//! workspace, `team.id`, and app, `app_id`), to bind webhooks to it.

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    EndpointNotSet, EndpointSet, ExtraTokenFields, StandardRevocableToken, StandardTokenResponse,
};
use serde::{Deserialize, Serialize};

/// Fields beyond the standard ones. Loosely typed: another provider may
/// use the same names for something else, and must still be understood.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct AccountFields {
    /// Slack: `{"id": "T…", "name": …}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    team: Option<serde_json::Value>,
    /// Slack: the app the token was issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    app_id: Option<serde_json::Value>,
}

impl ExtraTokenFields for AccountFields {}

impl AccountFields {
    /// The account (workspace) id and the app id, when the provider gave them.
    pub(super) fn account(&self) -> Option<(&str, Option<&str>)> {
        let team = self.team.as_ref()?.get("id")?.as_str()?;
        Some((team, self.app_id.as_ref().and_then(|v| v.as_str())))
    }
}

/// A token response.
pub(super) type Tokens = StandardTokenResponse<AccountFields, BasicTokenType>;

/// An OAuth client before its endpoints are set.
pub(super) type UnsetClient = oauth2::Client<
    BasicErrorResponse,
    Tokens,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
>;

/// The OAuth client roost uses: authorization and token endpoints set.
pub(super) type Client = oauth2::Client<
    BasicErrorResponse,
    Tokens,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

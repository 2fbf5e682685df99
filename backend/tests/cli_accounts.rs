//! `roost token create|list|revoke` against a real server, and the
//! operator's `roost user create|list|revoke-tokens|remove` on its
//! database: tables by default, `--json` on request, refusals as one line
//! with their code.

mod support;

use support::process::{Server, roost, text};

#[test]
fn tokens_and_users_through_the_binary() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(data.path(), &[], &[]);
    let dir = data.path();
    let created = roost(dir, &["user", "create", "ada"], &[]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let ada = text(&created.stdout).trim().to_string();
    let as_ada = [
        ("ROOST_SERVER", server.url.as_str()),
        ("ROOST_TOKEN", ada.as_str()),
    ];

    let made = roost(
        dir,
        &[
            "token",
            "create",
            "ci",
            "--scope",
            "read",
            "--expires",
            "30d",
        ],
        &as_ada,
    );
    assert!(made.status.success(), "{}", text(&made.stderr));
    let ci = text(&made.stdout).trim().to_string();
    assert!(ci.starts_with("roost_"), "only the token on stdout: {ci}");
    let said = text(&made.stderr);
    assert!(
        said.contains("token `ci`") && said.contains("read") && said.contains("expiring"),
        "{said}"
    );

    let listed = roost(dir, &["token", "list"], &as_ada);
    let table = text(&listed.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("LAST USED"),
        "{table}"
    );
    assert_eq!(lines.len(), 3, "a header, ci and default: {table}");
    let ci_line = lines
        .iter()
        .find(|l| l.contains(" ci "))
        .expect("ci listed");
    assert!(ci_line.contains("read"), "{ci_line}");
    assert!(
        !table.contains(&ci) && !table.contains(&ada),
        "no token values"
    );
    let ci_id = ci_line.split_whitespace().next().unwrap().to_string();
    let json = roost(dir, &["token", "list", "--json"], &as_ada);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["tokens"].as_array().unwrap().len(), 2);

    // A read-only token cannot make tokens: one line, with the code.
    let as_ci = [
        ("ROOST_SERVER", server.url.as_str()),
        ("ROOST_TOKEN", ci.as_str()),
    ];
    let refused = roost(dir, &["token", "create", "more"], &as_ci);
    assert_eq!(refused.status.code(), Some(1));
    let line = text(&refused.stderr);
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(
        line.starts_with("roost: 403 Forbidden: ")
            && line.trim_end().ends_with("(insufficient_scope)"),
        "{line}"
    );
    assert!(!line.contains('{'), "no raw JSON: {line}");

    let revoked = roost(dir, &["token", "revoke", &ci_id], &as_ada);
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    let gone = roost(dir, &["token", "list"], &as_ci);
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        text(&gone.stderr).contains("(invalid_token)"),
        "{}",
        text(&gone.stderr)
    );
    let again = roost(dir, &["token", "revoke", &ci_id], &as_ada);
    assert!(
        text(&again.stderr).contains("404 Not Found")
            && text(&again.stderr).contains("(not_found)")
    );

    // The operator's side, on the database.
    roost(dir, &["user", "create", "bob"], &[]);
    let users = text(&roost(dir, &["user", "list"], &[]).stdout);
    let names: Vec<&str> = users
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(names, ["ada", "bob"], "{users}");
    let revoke_all = roost(dir, &["user", "revoke-tokens", "ada"], &[]);
    assert!(
        text(&revoke_all.stderr).contains("revoked 1 token(s) of `ada`"),
        "{}",
        text(&revoke_all.stderr)
    );
    let removed = roost(dir, &["user", "remove", "bob"], &[]);
    assert!(removed.status.success(), "{}", text(&removed.stderr));
    let users = text(&roost(dir, &["user", "list", "--json"], &[]).stdout);
    let users: serde_json::Value = serde_json::from_str(&users).unwrap();
    assert_eq!(users.as_array().unwrap().len(), 1);
    let nobody = roost(dir, &["user", "remove", "nobody"], &[]);
    assert_eq!(nobody.status.code(), Some(2));
    assert_eq!(
        text(&nobody.stderr).trim(),
        "roost: error: no user `nobody` (see `roost user list`)"
    );
    drop(server);
}

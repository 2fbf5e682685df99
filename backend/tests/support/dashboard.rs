//! A browser's side of the dashboard, over plain HTTP: sign in, read pages,
//! post their forms (with or without the page's form token).

use super::TestApp;

/// A signed-in dashboard session.
pub struct Session {
    pub base: String,
    pub cookie: String,
    client: reqwest::Client,
}

/// What a page request answered.
pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    /// The form token the page's forms carry.
    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self.body.find(marker).expect("the page has a form token") + marker.len();
        let end = self.body[start..].find('"').unwrap();
        self.body[start..start + end].to_string()
    }

    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

async fn page(response: reqwest::Response) -> Page {
    Page {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap(),
    }
}

/// Posts the sign-in form with `token` as a browser on the same site does.
pub async fn sign_in_answer(app: &TestApp, token: &str) -> Page {
    let response = app
        .client
        .post(format!("{}/signin", app.base))
        .header("origin", &app.base)
        .header("sec-fetch-site", "same-origin")
        .form(&[("token", token), ("next", "/scripts")])
        .send()
        .await
        .unwrap();
    page(response).await
}

impl Session {
    /// Signs in with `token`; panics if refused.
    pub async fn sign_in(app: &TestApp, token: &str) -> Self {
        let answer = sign_in_answer(app, token).await;
        assert_eq!(answer.status, 303, "{}", answer.body);
        let set_cookie = answer
            .headers
            .get("set-cookie")
            .expect("a session cookie")
            .to_str()
            .unwrap()
            .to_string();
        let cookie = set_cookie.split(';').next().unwrap().to_string();
        Self {
            base: app.base.clone(),
            cookie,
            client: app.client.clone(),
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        page(response).await
    }

    /// Posts a form from one of roost's own pages (same origin).
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        self.post_from(path, fields, Some(&self.base.clone())).await
    }

    /// Posts a form as if from a page of `origin` (`None`: no Origin header).
    pub async fn post_from(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        origin: Option<&str>,
    ) -> Page {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .form(fields);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        page(request.send().await.unwrap()).await
    }
}

/// A script named `<script>alert(1)</script>` (written to the store:
/// deploy refuses such a name) and a run whose payload and output hold an
/// `<img onerror>`; the run's id.
pub async fn hostile_script_and_run(app: &TestApp, token: &str) -> String {
    let user_id = app.user_id(token).await;
    super::script_named(app.store.as_ref(), &user_id, "<script>alert(1)</script>").await;
    let script = app.deploy_example(token, "echo", "event-echo").await;
    let (status, run) = app
        .send(
            reqwest::Method::POST,
            token,
            &format!("/v1/scripts/{script}/run?wait=true"),
            serde_json::json!({ "handler": "on_created", "payload": { "note": "<img src=x onerror=alert(2)>" } }),
        )
        .await;
    assert_eq!(status, 200, "{run}");
    run["run_id"].as_str().unwrap().to_string()
}

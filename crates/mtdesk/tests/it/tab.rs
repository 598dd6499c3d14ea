//! A cookie-keeping HTTP client that does not follow redirects: the dashboard as a browser without
//! JavaScript sees it. Test modules add their own helpers in `impl Tab` blocks of their own.

use crate::helpers::TestApp;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};

/// A cookie-keeping client that does not follow redirects, like a browser tab we can inspect.
pub struct Tab {
    pub client: reqwest::Client,
    pub base: String,
}

pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect()
    }

    /// The value of the first hidden `csrf` input.
    pub fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\"")
            .unwrap_or_else(|| panic!("no csrf field in page: {}", self.body));
        let tag_start = self.body[..at].rfind('<').unwrap_or(0);
        let tag_end = at + self.body[at..].find('>').unwrap_or(0);
        let tag = &self.body[tag_start..tag_end];
        let v = tag.find("value=\"").expect("csrf value") + 7;
        tag[v..v + tag[v..].find('"').expect("end quote")].to_string()
    }
}

impl Tab {
    pub fn new(app: &TestApp) -> Self {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Self {
            client,
            base: app.base.clone(),
        }
    }

    pub async fn page(resp: reqwest::Response) -> Page {
        Page {
            status: resp.status(),
            headers: resp.headers().clone(),
            body: resp.text().await.expect("body"),
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        Self::page(
            self.client
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .expect("get"),
        )
        .await
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        Self::page(
            self.client
                .post(format!("{}{path}", self.base))
                .form(form)
                .send()
                .await
                .expect("post"),
        )
        .await
    }
}

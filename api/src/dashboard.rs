//! The dashboard at `GET /` (and `/ui`): plain HTML, CSS and JavaScript
//! with one vendored chart library (uPlot, MIT, `assets/vendor/uplot/`),
//! embedded in the binary so it works offline. The page reads only the
//! public API; nothing here computes data.
//!
//! The page is one document: its stylesheets and scripts are inlined, and
//! the Content-Security-Policy allows exactly those by hash. So when the API
//! needs a token, a browser that has none gets the page with status 401
//! (the page holds no data) and the page asks for the token; any other
//! client gets the usual 401 JSON body.

use std::sync::LazyLock;

use base64::Engine;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::auth::{self, Caller};
use crate::state::Shared;

const INDEX: &str = include_str!("../assets/index.html");
const APP: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/style.css");
const UPLOT_JS: &str = include_str!("../assets/vendor/uplot/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../assets/vendor/uplot/uPlot.min.css");

/// The page with its assets inlined, and the policy that allows them.
struct Page {
    html: String,
    csp: HeaderValue,
}

static PAGE: LazyLock<Page> = LazyLock::new(|| {
    let style = format!("{UPLOT_CSS}\n{STYLE}");
    let script = format!("{UPLOT_JS}\n{APP}");
    let hash = |text: &str| base64::engine::general_purpose::STANDARD.encode(auth::sha256(text.as_bytes()));
    // Nothing but this page's own inline code and this origin: no CDN, no
    // other inline script.
    let csp = format!(
        "default-src 'self'; img-src 'self' data:; style-src 'sha256-{}'; script-src 'sha256-{}'",
        hash(&style),
        hash(&script)
    );
    let html = INDEX.replacen("<!-- styles -->", &format!("<style>{style}</style>"), 1).replacen(
        "<!-- scripts -->",
        &format!("<script>{script}</script>"),
        1,
    );
    // The policy is built from base64 and ASCII text only.
    let csp = HeaderValue::from_str(&csp).unwrap_or(HeaderValue::from_static("default-src 'self'"));
    Page { html, csp }
});

/// The page. Its `<body data-gold>` says whether gold is loaded, so a page
/// over an output without gold makes no request that answers 503, and
/// `data-auth` whether the page must ask for a token (`required`), has been
/// let in with one (`token`), or the API is open (`open`).
pub(crate) fn routes(state: Shared) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::get()
        .and(warp::path::end().or(warp::path!("ui")).unify())
        .and(auth::authorization())
        .and(warp::header::optional::<String>("accept"))
        .and_then(move |authorization: Option<HeaderValue>, accept: Option<String>| {
            let state = state.clone();
            async move {
                let (status, auth) = match state.access.check(authorization.as_ref().map(HeaderValue::as_bytes)) {
                    Ok(Caller::Anyone) => (StatusCode::OK, "open"),
                    Ok(Caller::Holder(_)) => (StatusCode::OK, "token"),
                    Err(_) if accept.is_some_and(|a| a.contains("text/html")) => (StatusCode::UNAUTHORIZED, "required"),
                    Err(e) => return Err(warp::reject::custom(e)),
                };
                let gold = if state.snapshot.load().gold.is_some() { "loaded" } else { "none" };
                Ok(page(status, gold, auth))
            }
        })
}

fn page(status: StatusCode, gold: &str, auth: &str) -> Response {
    let body = PAGE.html.replacen(
        "<body data-gold=\"\" data-auth=\"\">",
        &format!("<body data-gold=\"{gold}\" data-auth=\"{auth}\">"),
        1,
    );
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_SECURITY_POLICY, PAGE.csp.clone());
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if status == StatusCode::UNAUTHORIZED {
        h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(auth::CHALLENGE));
    }
    response
}

//! The dashboard at `GET /` (and `/ui`): plain HTML, CSS and JavaScript
//! with one vendored chart library (uPlot, MIT, `assets/vendor/uplot/`),
//! embedded in the binary so it works offline. The page reads only the
//! public API; nothing here computes data.

use warp::http::{HeaderValue, header};
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::state::Shared;

const INDEX: &str = include_str!("../assets/index.html");
const APP: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/style.css");
const UPLOT_JS: &str = include_str!("../assets/vendor/uplot/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../assets/vendor/uplot/uPlot.min.css");

/// Nothing but this origin: no CDN, no inline script.
const CSP: &str = "default-src 'self'; img-src 'self' data:";

/// The page and its assets. The page's `<body data-gold>` says whether gold
/// is loaded, so a page over an output without gold makes no request that
/// answers 503.
pub(crate) fn routes(state: Shared) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let page = warp::path::end().or(warp::path!("ui")).unify().map(move || {
        let gold = if state.snapshot.load().gold.is_some() { "loaded" } else { "none" };
        let mut response = asset("", "text/html; charset=utf-8");
        *response.body_mut() = INDEX.replacen("data-gold=\"\"", &format!("data-gold=\"{gold}\""), 1).into();
        response
    });
    let app = warp::path!("ui" / "app.js").map(|| asset(APP, "text/javascript; charset=utf-8"));
    let style = warp::path!("ui" / "style.css").map(|| asset(STYLE, "text/css; charset=utf-8"));
    let uplot_js =
        warp::path!("ui" / "vendor" / "uPlot.iife.min.js").map(|| asset(UPLOT_JS, "text/javascript; charset=utf-8"));
    let uplot_css = warp::path!("ui" / "vendor" / "uPlot.min.css").map(|| asset(UPLOT_CSS, "text/css; charset=utf-8"));
    warp::get().and(page.or(app).unify().or(style).unify().or(uplot_js).unify().or(uplot_css).unify())
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = Response::new(body.into());
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

// minutely dashboard. It reads only the public API (/health, /services,
// /metrics, /metrics/rollup, /runs) and draws with uPlot. All times are UTC.
// It opens on an overview of every service, worst first; a row (or the
// service menu) opens that service's charts. After each render,
// window.minutely describes what was drawn (for the browser test, and for
// anyone debugging from the console).
"use strict";

const RANGES = { "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400 };
const BUCKETS = [["1m", 60], ["5m", 300], ["15m", 900], ["1h", 3600], ["1d", 86400]];
// The smallest bucket that keeps a chart within this many points.
const MAX_POINTS = 1500;
// Up to this span the latency chart shows per-minute quantiles (at most
// 10080 rows); beyond, quantiles cannot be summed, so it shows the rollup's
// weighted mean and max.
const QUANTILE_MAX_SECONDS = 7 * 86400;

// The overview's sparklines: the smallest bucket that keeps this many points or fewer.
const OVERVIEW_POINTS = 48;
// The overview's one rollup request asks for up to this many rows (the
// API's maximum for /metrics/rollup), so 1,000 services fit in one request.
const OVERVIEW_LIMIT = 100000;
// The overview draws this many rows (the worst) at once, then the rest in
// chunks of the next size, each after the page has had a chance to paint.
const OVERVIEW_FIRST_ROWS = 100;
const OVERVIEW_CHUNK_ROWS = 300;
// Which overview is being drawn: a newer one stops an older one's chunks.
let overviewDrawing = 0;
// Where the tab keeps the API token (session storage: this tab only).
const TOKEN_KEY = "minutely-token";

const view = {
  state: "loading", service: null, from: null, to: null, bucket: null, charts: {}, runs: 0, error: null,
  overview: null,
};
window.minutely = view;

const $ = (id) => document.getElementById(id);
const iso = (seconds) => new Date(seconds * 1000).toISOString().replace(".000Z", "Z");
const utcLabel = (seconds) => iso(seconds).slice(0, 16).replace("T", " ");
const epoch = (text) => Date.parse(text) / 1000;

class Unauthorized extends Error {}

async function api(path) {
  const headers = { accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(path, { headers });
  if (response.status === 401) throw new Unauthorized(token ? "The API refused this token." : "This API needs a token.");
  return { status: response.status, body: await response.json() };
}

// Every page of a paged endpoint.
async function allPages(path, limit) {
  const rows = [];
  for (let offset = 0; ; offset += limit) {
    const { status, body } = await api(`${path}&limit=${limit}&offset=${offset}`);
    if (status !== 200) throw new Error(`${path}: HTTP ${status} ${body?.error?.message ?? ""}`);
    for (const row of body.data) rows.push(row);
    rows.requests = offset / limit + 1;
    if (body.meta.count === 0 || offset + body.meta.count >= body.meta.total) return rows;
  }
}

function bucketFor(seconds, points = MAX_POINTS) {
  return BUCKETS.find(([, width]) => seconds / width <= points) ?? BUCKETS[BUCKETS.length - 1];
}

// Every bucket start of [from, to).
function bucketStarts(from, to, width) {
  const xs = [];
  for (let t = Math.floor(from / width) * width; t < to; t += width) xs.push(t);
  return xs;
}

function chart(id, series, data, yValues) {
  const el = $(id);
  el.replaceChildren();
  const plot = new uPlot({
    width: Math.max(el.clientWidth, 260),
    height: 220,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
    scales: { x: { time: true } },
    axes: [
      { label: "time (UTC)", space: 70, size: 56, values: (u, ticks) => ticks.map((t) => `${utcLabel(t).slice(11)}\n${utcLabel(t).slice(5, 10)}`) },
      { size: 64, values: yValues },
    ],
    series: [{ label: "UTC", value: (u, v) => (v == null ? "–" : utcLabel(v)) }, ...series],
  }, data, el);
  el.dataset.points = String(data[0].length);
  view.charts[id] = plot;
  return plot;
}

const sum = (values) => values.reduce((a, v) => a + (v ?? 0), 0);
const max = (values) => values.reduce((a, v) => (v == null ? a : a == null ? v : Math.max(a, v)), null);

// The window to show: a preset ends at the newest minute of `lastMinute`
// (the service's, or all of gold's: the latest data, however old), a custom
// one is taken as UTC.
function window_(lastMinute) {
  const range = $("range").value;
  if (range === "custom") {
    const from = epoch(`${$("from").value}:00Z`);
    const to = epoch(`${$("to").value}:00Z`);
    if (!(from < to)) throw new Error("Custom range: From must be before To.");
    return [from, to, "custom range"];
  }
  const to = epoch(lastMinute) + 60;
  return [to - RANGES[range], to, `the latest ${$("range").selectedOptions[0].text.replace("Last ", "")} with data`];
}

// One formatter each: building one per call costs more than the rest of a row.
const integer = new Intl.NumberFormat("en-US");
const oneDecimal = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });

const escapeHtml = (text) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

// A sparkline: an SVG polyline over the bucket values (null: no point), in
// integer coordinates (0–1000 across, 0–200 down), which are quick to write.
function sparkline(values, kind) {
  const top = max(values);
  if (top == null) return "";
  const n = values.length;
  let points = "";
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (v == null) continue;
    const x = n === 1 ? 500 : Math.round((i * 1000) / (n - 1));
    const y = 190 - (top > 0 ? Math.round((v / top) * 180) : 0);
    points += `${x},${y} `;
  }
  return `<svg class="spark spark-${kind}" viewBox="0 0 1000 200" preserveAspectRatio="none" aria-hidden="true"><polyline points="${points}"/></svg>`;
}

// The overview: every service over the window, from one rollup request
// (one page of up to OVERVIEW_LIMIT rows; more pages only beyond that),
// worst first: highest error rate, then highest p99, then most requests.
async function renderOverview(services, health) {
  const started = performance.now();
  const [from, to, what] = window_(health.gold.last_minute);
  const [bucket, width] = bucketFor(to - from, OVERVIEW_POINTS);
  const rows = await allPages(`/metrics/rollup?from=${iso(from)}&to=${iso(to)}&bucket=${bucket}`, OVERVIEW_LIMIT);
  const xs = bucketStarts(from, to, width);
  // By the bucket's text as the API writes it: no date parsing per row.
  const slot = new Map(xs.map((t, i) => [iso(t), i]));
  const byService = new Map([...services.keys()].map((name) => [name, {
    service: name, requests: 0, errors: 0, statuses: 0, p99: null,
    spark: { requests: xs.map(() => 0), errors: xs.map(() => null), p99: xs.map(() => null) },
  }]));
  for (const r of rows) {
    const s = byService.get(r.service);
    if (!s) continue;
    s.requests += r.request_count;
    s.errors += r.error_count;
    s.statuses += r.status_count;
    if (r.max_p99_latency_ms != null) s.p99 = s.p99 == null ? r.max_p99_latency_ms : Math.max(s.p99, r.max_p99_latency_ms);
    const i = slot.get(r.bucket);
    if (i !== undefined) {
      s.spark.requests[i] = r.request_count;
      s.spark.errors[i] = r.error_rate;
      s.spark.p99[i] = r.max_p99_latency_ms;
    }
  }
  const list = [...byService.values()].map((s) => ({ ...s, errorRate: s.statuses > 0 ? s.errors / s.statuses : null }));
  list.sort((a, b) => (b.errorRate ?? -1) - (a.errorRate ?? -1) || (b.p99 ?? -1) - (a.p99 ?? -1) ||
    b.requests - a.requests || (a.service < b.service ? -1 : 1));
  const rowHtml = (s) => {
    const name = escapeHtml(s.service);
    const rate = s.errorRate == null ? "–" : `${(s.errorRate * 100).toFixed(2)}%`;
    const p99 = s.p99 == null ? "–" : oneDecimal.format(s.p99);
    return `<tr data-service="${name}" data-requests="${s.requests}" data-error-rate="${s.errorRate ?? ""}" data-p99="${s.p99 ?? ""}">` +
      `<td class="svc"><a href="#service=${encodeURIComponent(s.service)}">${name}</a></td>` +
      `<td class="num">${integer.format(s.requests)}${sparkline(s.spark.requests, "requests")}</td>` +
      `<td class="num">${rate}${sparkline(s.spark.errors, "errors")}</td>` +
      `<td class="num">${p99}${sparkline(s.spark.p99, "p99")}</td></tr>`;
  };
  // The worst rows now; the rest in chunks, each after yielding to the browser, so
  // that a thousand services do not hold up the first screen.
  const body = $("services-overview").tBodies[0];
  const drawing = ++overviewDrawing;
  body.innerHTML = list.slice(0, OVERVIEW_FIRST_ROWS).map(rowHtml).join("");
  $("overview-window").textContent = `${utcLabel(from)} – ${utcLabel(to)} UTC (${what}), ${bucket} sparklines`;
  $("overview").hidden = false;
  const overview = {
    from: iso(from), to: iso(to), bucket, services: list.length, rollupRequests: rows.requests,
    ms: Math.round(performance.now() - started),
    complete: list.length <= OVERVIEW_FIRST_ROWS,
  };
  view.overview = overview;
  (async () => {
    for (let i = OVERVIEW_FIRST_ROWS; i < list.length; i += OVERVIEW_CHUNK_ROWS) {
      await new Promise((resolve) => setTimeout(resolve));
      if (drawing !== overviewDrawing) return;
      body.insertAdjacentHTML("beforeend", list.slice(i, i + OVERVIEW_CHUNK_ROWS).map(rowHtml).join(""));
    }
    overview.complete = true;
  })().catch(fail);
}

// One service's charts over the window.
async function renderCharts(services, health, service) {
  const [from, to, what] = window_(services.get(service).last_minute);
  const seconds = to - from;
  const [bucket, width] = bucketFor(seconds);
  Object.assign(view, { service, from: iso(from), to: iso(to), bucket, charts: {} });

  const q = `service=${encodeURIComponent(service)}&from=${iso(from)}&to=${iso(to)}`;
  const buckets = await allPages(`/metrics/rollup?${q}&bucket=${bucket}`, 10000);
  // Every bucket of the window: none means no events (0 requests, no error rate).
  const byStart = new Map(buckets.map((b) => [epoch(b.bucket), b]));
  const xs = bucketStarts(from, to, width);
  const requests = xs.map((t) => byStart.get(t)?.request_count ?? 0);
  const errorRate = xs.map((t) => byStart.get(t)?.error_rate ?? null);

  // Visible before drawing, so that charts take their container's width.
  $("charts").hidden = false;
  const perBucket = `per ${bucket} bucket`;
  $("requests-unit").textContent = perBucket;
  $("errors-unit").textContent = perBucket;
  chart("chart-requests", [{ label: "requests", stroke: "#0969da", fill: "#0969da22", width: 1.5 }], [xs, requests]);
  $("chart-requests").dataset.total = String(sum(requests));
  const percent = (u, ticks) => ticks.map((v) => `${(v * 100).toFixed(v < 0.1 ? 1 : 0)}%`);
  // Buckets without status codes have no error rate: join the ones that do, and mark them.
  chart("chart-errors", [{
    label: "error rate", stroke: "#cf222e", width: 1.5, spanGaps: true, points: { show: true, size: 4 },
    value: (u, v) => (v == null ? "–" : `${(v * 100).toFixed(2)}%`),
  }], [xs, errorRate], percent);
  $("chart-errors").dataset.max = String(max(errorRate));

  if (seconds <= QUANTILE_MAX_SECONDS) {
    const rows = await allPages(`/metrics?${q}`, 10000);
    const minutes = rows.map((r) => epoch(r.minute));
    const pick = (key) => rows.map((r) => r[key]);
    $("latency-unit").textContent = "per minute";
    chart("chart-latency", [
      { label: "p50", stroke: "#1a7f37", width: 1.5 },
      { label: "p95", stroke: "#9a6700", width: 1.5 },
      { label: "p99", stroke: "#cf222e", width: 1.5 },
    ], [minutes, pick("p50_latency_ms"), pick("p95_latency_ms"), pick("p99_latency_ms")]);
    $("chart-latency").dataset.maxP99 = String(max(pick("p99_latency_ms")));
  } else {
    const pick = (key) => xs.map((t) => byStart.get(t)?.[key] ?? null);
    $("latency-unit").textContent = `${perBucket}: mean and max (quantiles do not sum over buckets)`;
    chart("chart-latency", [
      { label: "mean", stroke: "#1a7f37", width: 1.5 },
      { label: "max", stroke: "#cf222e", width: 1.5 },
    ], [xs, pick("avg_latency_ms"), pick("max_latency_ms")]);
    $("chart-latency").dataset.max = String(max(pick("max_latency_ms")));
  }

  $("window").textContent = `${service}: ${utcLabel(from)} – ${utcLabel(to)} UTC (${what}). ` +
    `Gold from run ${health.gold.run_id}, last minute ${utcLabel(epoch(health.gold.last_minute))} UTC.`;
}

// The overview, and the chosen service's charts above it (none: charts hidden).
async function render(services, health) {
  view.state = "loading";
  $("status").textContent = "Loading…";
  const service = $("service").value;
  location.hash = new URLSearchParams({ service, range: $("range").value }).toString();
  if (service) {
    await renderCharts(services, health, service);
  } else {
    $("charts").hidden = true;
    Object.assign(view, { service: null, from: null, to: null, bucket: null, charts: {} });
  }
  await renderOverview(services, health);
  $("status").textContent = "";
  view.state = "ready";
}

async function loadRuns() {
  const { status, body } = await api("/runs?limit=10");
  if (status !== 200) throw new Error(`/runs: HTTP ${status}`);
  const rows = body.data.map((m) => {
    const tr = document.createElement("tr");
    const rejects = m.rows.silver_rejects;
    const cells = [
      [m.run_id, ""],
      [m.status.replaceAll("_", " "), `status-${m.status}`],
      [m.finished_at.slice(0, 19).replace("T", " "), ""],
      [m.unreadable_files?.length ? `${m.files.length} (+${m.unreadable_files.length} unreadable)` : String(m.files.length), "num"],
      [m.rows.bronze.toLocaleString("en-US"), "num"],
      [`${rejects.toLocaleString("en-US")} (${(m.reject_ratio * 100).toFixed(2)}%)`, "num"],
      [m.rows.gold.toLocaleString("en-US"), "num"],
    ];
    for (const [text, cls] of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      if (cls) td.className = cls;
      tr.append(td);
    }
    tr.dataset.runId = m.run_id;
    return tr;
  });
  $("runs").tBodies[0].replaceChildren(...rows);
  view.runs = rows.length;
}

function fail(error) {
  if (error instanceof Unauthorized) return askToken(error.message);
  view.state = "error";
  view.error = String(error.message ?? error);
  $("status").className = "empty";
  $("status").textContent = `Could not load the dashboard: ${view.error}`;
  console.error(error);
}

// Shows the token form; the page starts again once a token is given.
function askToken(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  $("token-reason").textContent = reason;
  $("token-form").hidden = false;
  $("controls").hidden = true;
  $("status").textContent = "";
  $("token").focus();
  view.state = "token";
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  $("token").value = "";
  $("token-form").hidden = true;
  $("controls").hidden = false;
  view.state = "loading";
  main().catch(fail);
});

let wired = false;

async function main() {
  if (document.body.dataset.auth === "required" && !sessionStorage.getItem(TOKEN_KEY)) {
    return askToken("This API needs a token.");
  }
  const runs = loadRuns();
  // Awaited below; marked handled now, so that an early failure (a refused
  // token) is reported once, by the caller, not also as unhandled.
  runs.catch(() => {});
  // The server marks the page when no gold is loaded, so that the page need
  // not ask /health (a 503 is logged by browsers as a console error).
  if (document.body.dataset.gold !== "loaded") {
    $("status").className = "empty";
    $("status").textContent = "No gold yet: no pipeline run has committed to this output. " +
      "Charts appear once `pipeline run` has published gold (the API picks it up by itself).";
    $("controls").hidden = true;
    await runs;
    view.state = "empty";
    return;
  }
  const [{ body: health }, { body }] = await Promise.all([api("/health"), api("/services")]);
  const services = new Map(body.data.map((s) => [s.service, s]));
  const select = $("service");
  select.replaceChildren(new Option("All services", ""), ...[...services.keys()].map((name) => new Option(name, name)));
  const wanted = new URLSearchParams(location.hash.slice(1));
  if (services.has(wanted.get("service"))) select.value = wanted.get("service");
  if (wanted.get("range") in RANGES) $("range").value = wanted.get("range");

  const to = new Date(epoch(health.gold.last_minute) * 1000 + 60000);
  $("to").value = to.toISOString().slice(0, 16);
  $("from").value = new Date(to - 86400000).toISOString().slice(0, 16);
  const again = () => render(services, health).catch(fail);
  if (!wired) {
    wired = true;
    $("range").addEventListener("change", () => {
      $("custom").hidden = $("range").value !== "custom";
      if ($("range").value !== "custom") again();
    });
    $("controls").addEventListener("submit", (event) => {
      event.preventDefault();
      again();
    });
    select.addEventListener("change", again);
    // A row of the overview opens that service's charts (above the overview).
    $("services-overview").addEventListener("click", (event) => {
      const row = event.target.closest("tr[data-service]");
      if (!row) return;
      event.preventDefault();
      select.value = row.dataset.service;
      again().then(() => $("charts").scrollIntoView());
    });
    $("home").addEventListener("click", (event) => {
      event.preventDefault();
      select.value = "";
      again();
    });
    let resize;
    addEventListener("resize", () => {
      clearTimeout(resize);
      resize = setTimeout(() => {
        for (const [id, plot] of Object.entries(view.charts)) plot.setSize({ width: Math.max($(id).clientWidth, 260), height: 220 });
      }, 100);
    });
  }
  await Promise.all([render(services, health), runs]);
}

main().catch(fail);

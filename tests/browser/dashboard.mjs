// Browser test of the dashboard: Debian's Chromium, driven by
// playwright-core, loads the page from the real `api` binary and checks
// that the overview shows every service with the API's own numbers, worst
// first, from one rollup request; that a row opens charts that drew the
// API's numbers; that the page works at 1280×800 and at phone width with
// nothing scrolling sideways; that an output without gold says so; that a
// server with tokens and TLS makes the page ask for a token, refuses a
// wrong one and keeps the right one for the tab only; that 1,000 services
// render in under a second; and that no console error was logged. Saves
// screenshots.
//
// Usage: node dashboard.mjs BASE_URL EMPTY_BASE_URL SECURE_URL TOKEN MANY_URL OUT_DIR
// (scripts/browser-test.sh starts the servers and runs this; SECURE_URL's
// self-signed certificate is trusted through NODE_EXTRA_CA_CERTS.)
import { chromium } from "playwright-core";

const [base, emptyBase, secureBase, token, manyBase, outDir] = process.argv.slice(2);
const failures = [];
function check(ok, what) {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failures.push(what);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});

async function open(url, viewport, context = browser) {
  const page = await context.newPage({ viewport, ignoreHTTPSErrors: true });
  const errors = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("requestfailed", (r) => errors.push(`request failed: ${r.url()}`));
  await page.goto(url);
  await settled(page);
  return { page, errors };
}

const settled = (page, service) => page.waitForFunction(
  (service) => ["ready", "empty", "error", "token"].includes(window.minutely?.state) &&
    (service === undefined || window.minutely.service === service),
  service, { timeout: 15000 });

async function apiAt(origin, path, bearer) {
  const response = await fetch(origin + path, { headers: bearer ? { authorization: `Bearer ${bearer}` } : {} });
  return response.json();
}
const api = (path) => apiAt(base, path);

// The overview against the API's rollup for the same window: every service,
// its totals and worst-minute p99, worst first, from one rollup request.
async function verifyOverview(page, label, origin = base, bearer = undefined) {
  // The worst rows are drawn at once, the rest in chunks: wait for all.
  await page.waitForFunction(() => window.minutely.overview?.complete, null, { timeout: 15000 });
  const view = await page.evaluate(() => window.minutely);
  check(view.state === "ready", `${label}: rendered (state ${view.state}${view.error ? `: ${view.error}` : ""})`);
  const o = view.overview;
  check(o?.rollupRequests === 1, `${label}: the overview made one rollup request (${o?.rollupRequests})`);
  const rollup = await apiAt(origin, `/metrics/rollup?from=${o.from}&to=${o.to}&bucket=${o.bucket}&limit=100000`, bearer);
  const services = (await apiAt(origin, "/services", bearer)).data.map((s) => s.service);
  const want = new Map(services.map((s) => [s, { requests: 0, errors: 0, statuses: 0, p99: null }]));
  for (const r of rollup.data) {
    const w = want.get(r.service);
    w.requests += r.request_count;
    w.errors += r.error_count;
    w.statuses += r.status_count;
    if (r.max_p99_latency_ms != null) w.p99 = Math.max(w.p99 ?? -Infinity, r.max_p99_latency_ms);
  }
  const rows = await page.$$eval("#services-overview tbody tr", (trs) => trs.map((tr) => ({
    service: tr.dataset.service, requests: Number(tr.dataset.requests),
    errorRate: tr.dataset.errorRate === "" ? null : Number(tr.dataset.errorRate),
    p99: tr.dataset.p99 === "" ? null : Number(tr.dataset.p99), sparklines: tr.querySelectorAll("svg.spark").length,
  })));
  check(rows.length === services.length && rows.length > 0, `${label}: one overview row per service (${rows.length} = ${services.length})`);
  const wrong = rows.filter((r) => {
    const w = want.get(r.service);
    const rate = w && w.statuses > 0 ? w.errors / w.statuses : null;
    return !w || r.requests !== w.requests || r.errorRate !== rate || r.p99 !== w.p99;
  });
  check(wrong.length === 0, `${label}: every row's requests, error rate and p99 equal the API's rollup ${JSON.stringify(wrong.slice(0, 3))}`);
  const key = (r) => [r.errorRate ?? -1, r.p99 ?? -1, r.requests];
  const sorted = rows.every((r, i) => i === 0 || (() => {
    const [a, b] = [key(rows[i - 1]), key(r)];
    return a[0] > b[0] || (a[0] === b[0] && (a[1] > b[1] || (a[1] === b[1] && a[2] >= b[2])));
  })());
  check(sorted, `${label}: worst first (error rate, then p99, then requests)`);
  check(rows.filter((r) => r.requests > 0).every((r) => r.sparklines >= 1), `${label}: services with requests have sparklines`);
  return view;
}

// What the page says it drew, against what the API answers for the same window.
async function verify(page, label) {
  const view = await page.evaluate(() => window.minutely);
  check(view.state === "ready", `${label}: rendered (state ${view.state}${view.error ? `: ${view.error}` : ""})`);
  check(await page.isVisible("#services-overview"), `${label}: the overview stays on the page`);
  const q = `service=${encodeURIComponent(view.service)}&from=${view.from}&to=${view.to}`;
  const rollup = await api(`/metrics/rollup?${q}&bucket=${view.bucket}&limit=10000`);
  const total = rollup.data.reduce((a, b) => a + b.request_count, 0);
  const drawn = Number(await page.getAttribute("#chart-requests", "data-total"));
  check(total > 0 && drawn === total, `${label}: requests drawn (${drawn}) = the API's rollup (${total}), ${view.bucket} buckets`);
  const maxRate = Math.max(...rollup.data.map((b) => b.error_rate ?? -1));
  const drawnRate = Number(await page.getAttribute("#chart-errors", "data-max"));
  check(drawnRate === maxRate, `${label}: max error rate drawn (${drawnRate}) = the API's (${maxRate})`);
  const rows = (await api(`/metrics?${q}&limit=10000`)).data;
  const p99 = Math.max(...rows.map((r) => r.p99_latency_ms ?? -1));
  const drawnP99 = Number(await page.getAttribute("#chart-latency", "data-max-p99"));
  check(drawnP99 === p99, `${label}: max p99 drawn (${drawnP99}) = the API's (${p99})`);
  const points = Number(await page.getAttribute("#chart-latency", "data-points"));
  check(points === rows.length, `${label}: one latency point per minute row (${points} = ${rows.length})`);
  check(await page.locator("#charts canvas").count() === 3, `${label}: three charts drawn`);
  return view;
}

// Desktop: the page opens on the overview; a row opens that service's charts.
{
  const { page, errors } = await open(`${base}/`, { width: 1280, height: 800 });
  await verifyOverview(page, "1280×800 overview");
  check(await page.locator("#charts").isHidden(), "the page opens on the overview, no service's charts yet");
  await page.screenshot({ path: `${outDir}/overview-1280x800.png` });
  const worst = await page.getAttribute("#services-overview tbody tr:first-child", "data-service");
  await page.click("#services-overview tbody tr:first-child");
  await settled(page, worst);
  const first = await verify(page, `1280×800, a click on the worst service (${worst})`);
  const runs = await api("/runs?limit=10");
  const shown = await page.locator("#runs tbody tr").count();
  check(shown > 0 && shown === runs.data.length, `runs table shows the API's latest runs (${shown} = ${runs.data.length})`);
  check(await page.getAttribute("#runs tbody tr:first-child", "data-run-id") === runs.data[0].run_id, "newest run first");
  const firstRow = await page.textContent("#runs tbody tr:first-child");
  check(firstRow.includes(runs.data[0].rows.bronze.toLocaleString("en-US")), "runs table shows bronze rows");
  const legends = await page.locator("#charts .u-legend").allTextContents();
  check((await page.textContent("#window")).includes("UTC") && legends.length === 3 && legends.every((l) => l.includes("UTC")),
    "times are labelled UTC (window note and every chart's legend)");
  await page.screenshot({ path: `${outDir}/dashboard-1280x800.png` });

  // Another service over 7 days: redrawn with that service's numbers, and the overview with it.
  const services = (await api("/services")).data.map((s) => s.service);
  const other = services.find((s) => s !== first.service);
  await page.selectOption("#range", "7d");
  await settled(page, first.service);
  await verifyOverview(page, "1280×800 overview over 7 days");
  await page.selectOption("#service", other);
  await settled(page, other);
  await verify(page, `1280×800, ${other} over 7 days`);
  // Back to all services: the charts close.
  await page.selectOption("#service", "");
  await settled(page, null);
  check(await page.locator("#charts").isHidden(), "\"All services\" closes the charts");
  check(errors.length === 0, `no console errors at 1280×800 ${errors.join(" | ")}`);
  await page.close();
}

// Phone width: the overview and the charts fit, nothing scrolls sideways.
{
  const { page, errors } = await open(`${base}/`, { width: 390, height: 844 });
  await verifyOverview(page, "390×844 overview");
  const overviewOver = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overviewOver <= 0, `no horizontal scrolling of the overview at 390 px (${overviewOver} px over)`);
  await page.screenshot({ path: `${outDir}/overview-390x844.png`, fullPage: true });
  const service = await page.getAttribute("#services-overview tbody tr:nth-child(2)", "data-service");
  await page.click("#services-overview tbody tr:nth-child(2) td.svc a");
  await settled(page, service);
  await verify(page, "390×844");
  const over = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(over <= 0, `no horizontal scrolling at 390 px (${over} px over)`);
  const width = await page.evaluate(() => document.querySelector("#chart-requests canvas").getBoundingClientRect().width);
  check(width > 250 && width <= 390, `charts fit the phone (${Math.round(width)} px)`);
  await page.screenshot({ path: `${outDir}/dashboard-390x844.png`, fullPage: true });
  check(errors.length === 0, `no console errors at 390×844 ${errors.join(" | ")}`);
  await page.close();
}

// An output with no gold yet.
{
  const { page, errors } = await open(`${emptyBase}/`, { width: 1280, height: 800 });
  const state = await page.evaluate(() => window.minutely.state);
  check(state === "empty", `no gold: the page says so (state ${state})`);
  check((await page.textContent("#status")).includes("No gold yet"), "no gold: the message is shown");
  check(await page.locator("#charts").isHidden(), "no gold: no empty charts");
  await page.screenshot({ path: `${outDir}/dashboard-empty.png` });
  check(errors.length === 0, `no console errors without gold ${errors.join(" | ")}`);
  await page.close();
}

// Tokens and TLS: the page asks for a token, refuses a wrong one, and keeps
// the right one for this tab only.
{
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const { page, errors } = await open(`${secureBase}/`, { width: 1280, height: 800 }, context);
  check(await page.evaluate(() => window.minutely.state) === "token", "with tokens: the page asks for a token");
  check(await page.isVisible("#token-form"), "with tokens: the token form is shown");
  await page.screenshot({ path: `${outDir}/token-1280x800.png` });
  await page.fill("#token", "not-the-token");
  await page.click("#token-form button");
  await page.waitForFunction(() => window.minutely.state !== "loading", null, { timeout: 15000 });
  await settled(page);
  check(await page.evaluate(() => window.minutely.state) === "token", "a wrong token: asked again");
  check((await page.textContent("#token-reason")).includes("refused"), "a wrong token: the page says it was refused");
  await page.fill("#token", token);
  await page.click("#token-form button");
  await page.waitForFunction(() => window.minutely.state !== "token", null, { timeout: 15000 });
  await settled(page);
  await verifyOverview(page, "with the token", secureBase, token);
  const stored = await page.evaluate(() => [sessionStorage.getItem("minutely-token"), localStorage.length, document.cookie]);
  check(stored[0] === token && stored[1] === 0 && stored[2] === "", "the token is kept in this tab's session storage only");
  await page.reload();
  await settled(page);
  check(await page.evaluate(() => window.minutely.state) === "ready", "a reload in the same tab keeps the token");
  const other = await open(`${secureBase}/`, { width: 1280, height: 800 }, await browser.newContext({ ignoreHTTPSErrors: true }));
  check(await other.page.evaluate(() => window.minutely.state) === "token", "another tab's session asks again");
  // Refused requests (the page itself, the wrong token's) are logged as 401s; nothing else may be.
  const unexpected = errors.filter((e) => !e.includes("401"));
  check(unexpected.length === 0, `no console errors with tokens but the 401s ${unexpected.join(" | ")}`);
  await context.close();
}

// 1,000 services: one rollup request; the page shows the worst services in
// under a second (the median of three loads, as the machine is shared),
// and lists every service soon after.
{
  const walls = [];
  let view;
  for (let i = 0; i < 3; i++) {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const started = Date.now();
    await page.goto(`${manyBase}/`);
    await settled(page);
    const ready = Date.now() - started;
    await page.waitForFunction(() => window.minutely.overview?.complete, null, { timeout: 15000 });
    walls.push([ready, Date.now() - started]);
    if (i === 0) {
      view = await verifyOverview(page, "1,000 services", manyBase);
      await page.screenshot({ path: `${outDir}/overview-1000-services.png` });
    }
    await page.close();
  }
  check(view.overview.services === 1000, `1,000 services listed (${view.overview.services})`);
  const median = (k) => walls.map((w) => w[k]).sort((a, b) => a - b)[1];
  const shown = walls.map((w) => `${w[0]}/${w[1]}`).join(", ");
  check(median(0) < 1000, `1,000 services: page ready ${median(0)} ms after navigation, all rows at ${median(1)} ms ` +
    `(median of three; ready/all: ${shown} ms), under 1 s`);
}

await browser.close();
if (failures.length > 0) {
  console.error(`${failures.length} browser check(s) failed.`);
  process.exit(1);
}
console.log("All browser checks passed.");

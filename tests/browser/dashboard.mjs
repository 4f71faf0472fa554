// Browser test of the dashboard: Debian's Chromium, driven by
// playwright-core, loads the page from the real `api` binary and checks
// that the charts drew the API's own numbers, that the page works at
// 1280×800 and at phone width, that an output without gold says so, and
// that no console error was logged. Saves screenshots.
//
// Usage: node dashboard.mjs BASE_URL EMPTY_BASE_URL OUT_DIR
// (scripts/browser-test.sh starts both servers and runs this.)
import { chromium } from "playwright-core";

const [base, emptyBase, outDir] = process.argv.slice(2);
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

async function open(url, viewport) {
  const page = await browser.newPage({ viewport });
  const errors = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("requestfailed", (r) => errors.push(`request failed: ${r.url()}`));
  await page.goto(url);
  await settled(page);
  return { page, errors };
}

const settled = (page, service) => page.waitForFunction(
  (service) => ["ready", "empty", "error"].includes(window.minutely?.state) && (!service || window.minutely.service === service),
  service, { timeout: 15000 });

async function api(path) {
  const response = await fetch(base + path);
  return response.json();
}

// What the page says it drew, against what the API answers for the same window.
async function verify(page, label) {
  const view = await page.evaluate(() => window.minutely);
  check(view.state === "ready", `${label}: rendered (state ${view.state}${view.error ? `: ${view.error}` : ""})`);
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

// Desktop.
{
  const { page, errors } = await open(`${base}/`, { width: 1280, height: 800 });
  const first = await verify(page, "1280×800, default");
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

  // Another service over 7 days: redrawn with that service's numbers.
  const services = (await api("/services")).data.map((s) => s.service);
  const other = services.find((s) => s !== first.service);
  await page.selectOption("#range", "7d");
  await settled(page, first.service);
  await page.selectOption("#service", other);
  await settled(page, other);
  await verify(page, `1280×800, ${other} over 7 days`);
  check(errors.length === 0, `no console errors at 1280×800 ${errors.join(" | ")}`);
  await page.close();
}

// Phone width.
{
  const { page, errors } = await open(`${base}/`, { width: 390, height: 844 });
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

await browser.close();
if (failures.length > 0) {
  console.error(`${failures.length} browser check(s) failed.`);
  process.exit(1);
}
console.log("All browser checks passed.");

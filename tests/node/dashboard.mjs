// The live dashboard in headless Chromium (playwright-core driving Debian's /usr/bin/chromium):
// the page loads, takes the admin token from the keyboard, shows live numbers; a load test
// started from its form makes the numbers and charts move; the results appear; a screenshot is
// saved. Run by crates/wakili/tests/dashboard.rs with WAKILI_BASE, WAKILI_ADMIN_TOKEN and
// WAKILI_SCREENSHOT in the environment.
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const base = process.env.WAKILI_BASE;
const token = process.env.WAKILI_ADMIN_TOKEN;
const screenshot = process.env.WAKILI_SCREENSHOT;
assert.ok(base && token && screenshot, 'WAKILI_BASE, WAKILI_ADMIN_TOKEN, WAKILI_SCREENSHOT');

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const problems = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1400 } });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  // Expected 404s: the browser's favicon request, and the load-test status before the first
  // test. Chrome logs each as a console error, so those are told apart by their URL here.
  const expected404 = (url) => url.endsWith('/favicon.ico') || url.endsWith('/api/v1/performance/load-tests');
  page.on('response', (r) => {
    if (r.status() >= 400 && !(r.status() === 404 && expected404(r.url()))) problems.push(`HTTP ${r.status()} ${r.url()}`);
  });
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().includes('status of 404')) problems.push(`console: ${m.text()}`);
  });

  await page.goto(`${base}/dashboard`);
  // Keyboard only: focus the labelled field, type, press Enter.
  await page.getByRole('textbox', { name: 'Admin token' }).focus();
  await page.keyboard.type(token);
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('Live'));
  assert.equal(await page.evaluate(() => sessionStorage.getItem('wakili.adminToken')), token);
  assert.equal(await page.inputValue('#token'), '', 'the token field is cleared');
  const text = (id) => page.textContent(`#${id}`);
  const joinsBefore = await text('stat-joins');
  console.log(`before: joins ${joinsBefore}, connections ${await text('stat-connections')}`);

  // A load test from the form.
  await page.getByLabel('Participants').fill('40');
  await page.getByLabel('Ramp-up').fill('2s');
  await page.getByLabel('Duration').fill('8s');
  await page.getByLabel('Message interval').fill('250ms');
  await page.getByLabel('Join interval').fill('100ms');
  await page.getByRole('button', { name: 'Start load test' }).click();
  await page.waitForFunction(() => document.getElementById('loadtest-status').textContent.includes('running'));

  // Live numbers move while it runs.
  const signals = new Set();
  let maxConnections = 0;
  let rows = 0;
  const until = Date.now() + 15000;
  while (Date.now() < until && (signals.size < 3 || maxConnections < 40 || rows === 0)) {
    await page.waitForTimeout(700);
    signals.add(await text('stat-signals'));
    maxConnections = Math.max(maxConnections, Number((await text('stat-connections')).replace(/,/g, '')) || 0);
    rows = Math.max(rows, await page.locator('#consultations tbody tr').count());
  }
  console.log(`while running: signals seen ${[...signals].join(' → ')}; max connections ${maxConnections}; rows ${rows}`);
  const running = screenshot.replace(/\.png$/, '-running.png');
  await page.screenshot({ path: running, fullPage: true });
  console.log(`screenshot while running: ${running}`);
  assert.ok(signals.size >= 3, `the signal count changed at least twice: ${[...signals]}`);
  assert.ok(maxConnections >= 40, `all 40 participants showed as connected (max ${maxConnections})`);
  assert.ok(rows >= 40, `one row per participant (${rows})`);
  assert.notEqual(await text('stat-joins'), joinsBefore);
  const levels = await page.locator('#consultations tbody td.level-high, #consultations tbody td.level-medium').count();
  assert.ok(levels > 0, 'participants show their quality level');
  // The charts drew something: the signals/s chart (uPlot's canvas) has blue line pixels.
  const inked = await page.evaluate(() => {
    const c = document.querySelector('#chart-signalRate canvas');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i + 2] > 150 && d[i] < 60) n += 1;
    return n;
  });
  assert.ok(inked > 50, `the signals/s chart has a line (${inked} pixels)`);

  await page.waitForFunction(() => document.getElementById('loadtest-status').textContent.includes('finished'), null, { timeout: 30000 });
  await page.waitForSelector('#loadtest-results:not([hidden])');
  const results = await page.textContent('#loadtest-results');
  console.log(`results: ${results.replace(/\s+/g, ' ')}`);
  assert.match(results, /Joined\s*40/);
  assert.match(results, /Errors\s*0/);
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`screenshot: ${screenshot}`);
  assert.deepEqual(problems, [], 'no page errors, console errors or CSP violations');
} finally {
  await browser.close();
}

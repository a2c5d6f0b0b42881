/**
 * The /ui page (`maas serve --ui`) and the model card it reads. Over HTTP: the page's files with
 * their security headers, open without credentials while the card needs a token, nothing under
 * /ui without --ui, and the card of a model saved with its pipeline, history and background. In a
 * real browser (Debian's chromium driven by playwright-core; skipped, saying so, where none is
 * installed): the page lists the models, the test fills the form, clicks, and checks that the
 * bars of the attribution chart carry the explanation the REST API gives for the same record and
 * that the history chart has every epoch; a screenshot is left in the test's temporary folder.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import { HttpInferenceClient } from '../../src/client/index.js';
import { Pipeline, prepare, type ModelCard, type Sequential } from '../../src/index.js';
import { addTokenRecord } from '../../src/serving/auth/token-store.js';
import { createToken } from '../../src/serving/auth/tokens.js';
import type { RunningServer } from '../../src/serving/server.js';
import { routes, uiRoutes } from '../../src/serving/http/server.js';
import { loadUiAssets } from '../../src/serving/http/ui.js';
import { addVersion, smallModel, startServer, tempRepository } from './server-helpers.js';

const COLORS = ['red', 'green', 'blue'];
function cars(count: number) {
  return Array.from({ length: count }, (_, i) => ({
    weight: 1800 + ((i * 37) % 2500),
    color: COLORS[i % 3]!,
    doors: 2 + 2 * (i % 2),
    buy: (i * 37) % 2500 < 1200 === (i % 3 !== 1) ? 'yes' : 'no',
  }));
}
const EPOCHS = 4;

/** The browser: $MAAS_CHROMIUM, else Debian's chromium where it is installed. */
const BROWSER = [process.env.MAAS_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find(
  (p): p is string => p !== undefined && p !== '' && existsSync(p),
);
if (!BROWSER)
  console.warn(
    'ui.test: SKIPPING the real-browser test: no chromium at $MAAS_CHROMIUM, /usr/bin/chromium or /usr/bin/chromium-browser (apt-get install chromium)',
  );

let root: string;
let server: RunningServer;
let rest: HttpInferenceClient;
let model: Sequential;
let base: string;

beforeAll(async () => {
  const data = cars(60);
  const { pipeline, x, y } = prepare(data, { label: 'buy', onWarning: 'ignore' });
  model = smallModel(pipeline.width, 1, 5);
  model.compile({ optimizer: 'adam', loss: 'binaryCrossentropy', metrics: ['accuracy'] });
  await model.fit(x, y!, { epochs: EPOCHS, batchSize: 16, seed: 1, verbose: 0, validationSplit: 0.25 });
  model.setPreparation(pipeline);
  model.setExplanationBackground(
    data.map(({ buy: _, ...features }) => features),
    { maxRows: 20, seed: 2 },
  );
  root = await tempRepository();
  await addVersion(root, 'cars', 1, model, {
    parameters: {
      explain_method: { string_value: 'kernelShap' },
      explain_options: { string_value: JSON.stringify({ seed: 4 }) },
    },
  });
  await addVersion(root, 'plain', 1, smallModel(3, 2, 9), {});
  server = await startServer(root, { ui: true });
  base = `http://127.0.0.1:${server.httpPort}`;
  rest = new HttpInferenceClient(base);
});

afterAll(async () => {
  await server?.close();
});

describe('/ui over HTTP', () => {
  it('serves the page and its files with a strict content security policy, and nothing else under /ui', async () => {
    for (const [path, type] of [
      ['/ui', 'text/html'],
      ['/ui/', 'text/html'],
      ['/ui/app.js', 'text/javascript'],
      ['/ui/app.css', 'text/css'],
      ['/ui/plot.umd.min.js', 'text/javascript'],
      ['/ui/d3.min.js', 'text/javascript'],
    ] as const) {
      const res = await fetch(base + path);
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type'), path).toContain(type);
      expect(res.headers.get('content-security-policy'), path).toContain("script-src 'self'");
      expect(res.headers.get('x-content-type-options'), path).toBe('nosniff');
      expect((await res.text()).length, path).toBeGreaterThan(100);
    }
    for (const path of [
      '/ui/../package.json',
      '/ui/%2e%2e%2fpackage.json',
      '/ui/app.ts',
      '/ui/x/app.js',
      '/uiapp.js',
    ]) {
      const res = await fetch(base + path);
      expect(res.status, path).toBe(404);
    }
  });

  it('opens only the page route, to exactly its five files', async () => {
    expect(routes(server.dataplane).filter((r) => r.open)).toEqual([]);
    const assets = await loadUiAssets();
    expect([...assets.keys()].sort()).toEqual(['', 'app.css', 'app.js', 'd3.min.js', 'plot.umd.min.js']);
    const page = uiRoutes(assets);
    expect(page.map((r) => [r.method, r.path, r.open])).toEqual([['GET', '/ui/{file}', true]]);
  });

  it('is not served without --ui', async () => {
    const plain = await startServer(root);
    try {
      const res = await fetch(`http://127.0.0.1:${plain.httpPort}/ui`);
      expect(res.status).toBe(404);
      expect(((await res.json()) as { error: string }).error).toContain('KServe v2 path');
    } finally {
      await plain.close();
    }
  });

  it("gives a model's card: the raw columns to fill, the labels, the method and every epoch", async () => {
    const card = (await (await fetch(`${base}/v2/models/cars/card`)).json()) as ModelCard;
    expect(card).toMatchObject({
      name: 'cars',
      version: '1',
      platform: 'maas_dense',
      task: 'classification',
      output: { name: 'output', width: 1, labels: ['no', 'yes'] },
      explain: { method: 'kernelShap' },
    });
    if (card.inputs.kind !== 'columns') throw new Error(`expected raw columns, got ${card.inputs.kind}`);
    const byName = Object.fromEntries(card.inputs.columns.map((c) => [c.name, c]));
    expect(byName.color).toMatchObject({ kind: 'category', categories: ['blue', 'green', 'red'] });
    expect(byName.weight!.kind).toBe('number');
    expect(typeof byName.weight!.typical).toBe('number');
    expect(card.history).toHaveLength(EPOCHS);
    expect(card.history[EPOCHS - 1]!.val_loss).toBeCloseTo(model.trainingHistory[EPOCHS - 1]!.val_loss!, 6);
    const plain = (await (await fetch(`${base}/v2/models/plain/versions/1/card`)).json()) as ModelCard;
    expect(plain).toMatchObject({
      inputs: { kind: 'tensor', name: 'input', width: 3, typical: [0, 0, 0] },
      explain: null,
      history: [],
      task: null,
    });
    // An unknown model is the client's error, as on every model route (Triton answers 400).
    const missing = await fetch(`${base}/v2/models/nope/card`);
    expect(missing.status).toBe(400);
    expect(((await missing.json()) as { error: string }).error).toContain('nope');
  });

  it('gives a card for a crafted pipeline whose date fill no Date can hold (no typical value, no 500)', () => {
    const pipeline = Pipeline.fromJSON({
      kind: 'maas.preparation',
      version: 2,
      columns: [{ name: 'when', kind: 'date', parts: null, fill: 1e20 }],
      scale: { kind: 'none' },
    });
    expect(pipeline.columnForms).toEqual([{ name: 'when', kind: 'date', typical: null }]);
  });

  it('passes the page without credentials, while the card and every call need a token', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'maas-ui-tokens-'));
    const tokenFile = join(dir, 'tokens.json');
    const { token, record } = await createToken({ name: 'viewer', scopes: ['metadata'] });
    await addTokenRecord(tokenFile, record);
    const guarded = await startServer(root, { ui: true, tokenFile });
    try {
      const at = `http://127.0.0.1:${guarded.httpPort}`;
      expect((await fetch(`${at}/ui`)).status).toBe(200);
      expect((await fetch(`${at}/ui/app.js`)).status).toBe(200);
      expect((await fetch(`${at}/v2/models/cars/card`)).status).toBe(401);
      const ok = await fetch(`${at}/v2/models/cars/card`, { headers: { authorization: `Bearer ${token}` } });
      expect(ok.status).toBe(200);
    } finally {
      await guarded.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!BROWSER)('/ui in a real browser', () => {
  let browser: Browser;
  let shots: string;

  beforeAll(async () => {
    shots = await mkdtemp(join(tmpdir(), 'maas-ui-browser-'));
    // As root, chromium runs only without its sandbox (a test container is root).
    browser = await chromium.launch({
      executablePath: BROWSER!,
      args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
  });

  it('fills the form, predicts and explains, and charts the explanation and the history', async () => {
    const page = await browser.newPage({ viewport: { width: 1100, height: 1300 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${base}/ui`);
    await page.waitForSelector('body[data-ready="true"]');
    const listed = await page.$$eval('#models button', (b) => b.map((e) => e.textContent));
    expect(listed).toEqual(['cars v1', 'plain v1']);
    await page.click('#models button[data-model="cars"]');
    await page.waitForFunction(() => document.querySelector('#model-title')?.textContent?.startsWith('cars'));
    // The form has one field per raw column; the category is a select of the categories fit saw.
    const record = { weight: 2345, color: 'green', doors: 4 };
    await page.fill('input[name="weight"]', String(record.weight));
    await page.selectOption('select[name="color"]', record.color);
    await page.fill('input[name="doors"]', String(record.doors));
    await page.click('#run');
    await page.waitForSelector('#attributions svg');
    // The chart's bars carry the attribution of each raw column: the same as the REST API's.
    const bars = await page.$$eval('#attributions svg g[aria-label="bar"] title', (t) => t.map((e) => e.textContent));
    const charted = Object.fromEntries(
      bars.map((b) => [b.slice(0, b.indexOf(': ')), Number(b.slice(b.indexOf(': ') + 2))]),
    );
    const answer = await rest.explain({ model: 'cars', records: [record] });
    const columns = answer.explanations[0]!.columns!;
    expect(Object.keys(charted).sort()).toEqual(columns.map((c) => c.column).sort());
    for (const c of columns) expect(charted[c.column], c.column).toBe(c.attribution);
    // The prediction names the class the REST API predicts, with its probability.
    const inferred = await rest.infer({ model: 'cars', records: [record] });
    const p = Number((inferred.outputs.find((o) => o.name === 'output')!.data as ArrayLike<number>)[0]);
    const prediction = await page.textContent('#prediction');
    expect(prediction).toContain(p >= 0.5 ? 'yes' : 'no');
    expect(prediction).toContain(`P(yes) = ${p.toPrecision(4)}`);
    // The history chart: every epoch of loss, accuracy and their validation values.
    expect(await page.getAttribute('#history', 'data-epochs')).toBe(String(EPOCHS));
    const dots = await page.$$eval('#history svg g[aria-label="dot"] title', (t) => t.map((e) => e.textContent));
    const metrics = Object.keys(model.trainingHistory[0]!);
    expect(dots).toHaveLength(EPOCHS * metrics.length);
    expect(dots).toContain(`loss, epoch 1: ${model.trainingHistory[0]!.loss}`);
    // The statistics count the inference the page made (and the test's own).
    expect(await page.textContent('#stats')).toMatch(/Explained\s*1 /);
    const shot = join(shots, 'ui.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect((await stat(shot)).size).toBeGreaterThan(10_000);
    console.log(`ui.test: screenshot at ${shot}`);
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);

  it('asks for a token when the server wants one, and then works with it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'maas-ui-tokens-'));
    const tokenFile = join(dir, 'tokens.json');
    const { token, record } = await createToken({ name: 'viewer', scopes: ['metadata', 'infer', 'explain'] });
    await addTokenRecord(tokenFile, record);
    const guarded = await startServer(root, { ui: true, tokenFile });
    const page = await browser.newPage();
    try {
      await page.goto(`http://127.0.0.1:${guarded.httpPort}/ui`);
      await page.waitForSelector('#token-form:not([hidden])');
      expect(await page.textContent('#message')).toMatch(/token|credential/i);
      await page.fill('#token', token);
      await page.click('#token-form button');
      await page.waitForSelector('body[data-ready="true"]');
      expect(await page.$$eval('#models button', (b) => b.length)).toBe(2);
    } finally {
      await page.close();
      await guarded.close();
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

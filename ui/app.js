// maas /ui: the served models and their statistics, a form that predicts and explains one row with
// an attribution chart, and the training history saved with the model. It talks only to the
// server's REST API (KServe v2 plus maas's card and explain routes), with the token the page is
// given when the server asks for one. Every name and value from the server is set as text.
/* global Plot */

const TOKEN_KEY = 'maas-token';
/** Bars drawn in the attribution chart (the largest by magnitude). */
const TOP_ATTRIBUTIONS = 15;
/** Epochs drawn at most in the history chart (a long history is thinned evenly). */
const MAX_HISTORY_POINTS = 500;
/** Above this many inputs a tensor row is typed as one list of numbers rather than one field each. */
const MAX_TENSOR_FIELDS = 32;

const $ = (id) => document.getElementById(id);
const state = { token: sessionStorage.getItem(TOKEN_KEY) ?? '', card: null, selected: null };

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** A REST call: JSON in and out, the token attached; an error answer becomes an ApiError. */
async function api(method, path, body) {
  const headers = body === undefined ? {} : { 'content-type': 'application/json' };
  if (state.token) headers.authorization = `Bearer ${state.token}`;
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : {};
  } catch {
    throw new ApiError(res.status, `${res.status} ${res.statusText}`);
  }
  if (!res.ok) throw new ApiError(res.status, json.error ?? `${res.status} ${res.statusText}`);
  return json;
}

function element(tag, text, attributes = {}) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  for (const [k, v] of Object.entries(attributes)) e.setAttribute(k, v);
  return e;
}

function showError(error) {
  if (error instanceof ApiError && (error.status === 401 || error.status === 403)) $('token-form').hidden = false;
  $('message').textContent = error.message;
}

const path = (name, version) =>
  `/v2/models/${encodeURIComponent(name)}${version ? `/versions/${encodeURIComponent(version)}` : ''}`;

const number = (v) => (Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(3) : v.toPrecision(4));

async function loadServer() {
  const server = await api('GET', '/v2');
  $('server').textContent = `${server.name} ${server.version}`;
}

/** The models list: every ready version, from the statistics route (the metadata scope). */
async function loadModels() {
  const { model_stats: stats } = await api('GET', '/v2/models/stats');
  const list = $('models');
  list.replaceChildren();
  for (const entry of stats) {
    const button = element('button', `${entry.name} v${entry.version}`, { type: 'button' });
    button.dataset.model = entry.name;
    button.dataset.version = entry.version;
    button.addEventListener('click', () => selectModel(entry.name, entry.version).catch(showError));
    const item = element('li');
    item.append(button);
    list.append(item);
  }
  if (stats.length === 0) list.append(element('li', 'No model is ready.'));
  return stats;
}

async function selectModel(name, version) {
  $('message').textContent = '';
  const card = await api('GET', `${path(name, version)}/card`);
  state.card = card;
  state.selected = { name, version };
  for (const b of document.querySelectorAll('#models button'))
    b.setAttribute('aria-current', String(b.dataset.model === name && b.dataset.version === version));
  $('model').hidden = false;
  $('model-title').textContent = `${card.name} (version ${card.version})`;
  const explains = card.explain ? `explains with ${card.explain.method}` : 'explanations are off (explain_method)';
  $('model-about').textContent = `${card.platform}, ${card.task ?? 'outputs'}; ${explains}`;
  $('run').textContent = card.explain ? 'Predict and explain' : 'Predict';
  buildForm(card);
  $('prediction').textContent = '';
  $('attributions').replaceChildren();
  drawHistory(card.history);
  await loadStats();
}

async function loadStats() {
  const { name, version } = state.selected;
  const {
    model_stats: [s],
  } = await api('GET', `${path(name, version)}/stats`);
  const mean = (stat) => (stat.count ? `${(stat.ns / stat.count / 1e3).toFixed(1)} µs` : '–');
  const rows = [
    ['Inferences', s.inference_count],
    ['Batches run', s.execution_count],
    ['Succeeded', `${s.inference_stats.success.count} (mean ${mean(s.inference_stats.success)})`],
    ['Failed', s.inference_stats.fail.count],
    ['Last inference', s.last_inference ? new Date(s.last_inference).toLocaleString() : '–'],
  ];
  if (s.explain_stats)
    rows.push(['Explained', `${s.explain_stats.success.count} (mean ${mean(s.explain_stats.success)})`]);
  $('stats').replaceChildren(
    ...rows.map(([k, v]) => {
      const tr = element('tr');
      tr.append(element('th', k), element('td', String(v)));
      return tr;
    }),
  );
}

/** One field per raw column (a select for a category), or per tensor input, started at a typical value. */
function buildForm(card) {
  const fields = $('fields');
  fields.replaceChildren();
  if (card.inputs.kind === 'columns') {
    for (const column of card.inputs.columns) {
      const label = element('label', `${column.name} (${column.kind})`);
      let input;
      if (column.categories) {
        input = element('select');
        for (const c of column.categories) input.append(element('option', c, { value: c }));
        if (column.typical !== null) input.value = String(column.typical);
      } else {
        const type = column.kind === 'number' ? 'number' : column.kind === 'date' ? 'date' : 'text';
        input = element('input', undefined, { type, ...(type === 'number' ? { step: 'any' } : {}) });
        if (column.typical !== null) input.value = type === 'number' ? number(column.typical) : column.typical;
      }
      input.name = column.name;
      input.dataset.kind = column.kind;
      label.append(input);
      fields.append(label);
    }
    return;
  }
  const { width, typical } = card.inputs;
  if (width > MAX_TENSOR_FIELDS) {
    const label = element('label', `${card.inputs.name}: ${width} numbers, separated by commas`);
    const area = element('textarea', typical.map(number).join(', '), { name: card.inputs.name });
    label.append(area);
    fields.append(label);
    return;
  }
  typical.forEach((v, i) => {
    const label = element('label', `x${i}`);
    const input = element('input', undefined, { type: 'number', step: 'any', name: `x${i}` });
    input.value = number(v);
    label.append(input);
    fields.append(label);
  });
}

/** The form's row as a request body: one record (raw columns) or one FP32 tensor row. */
function requestBody(card) {
  const form = $('row-form');
  if (card.inputs.kind === 'columns') {
    // No prototype: a column may be named __proto__ or constructor.
    const record = Object.create(null);
    for (const input of form.querySelectorAll('[name]')) {
      const value = input.value.trim();
      if (input.dataset.kind === 'number') {
        if (value === '' || !Number.isFinite(Number(value))) throw new Error(`${input.name} needs a number`);
        record[input.name] = Number(value);
      } else record[input.name] = value;
    }
    return { records: [record] };
  }
  const { width, name } = card.inputs;
  const text =
    width > MAX_TENSOR_FIELDS
      ? form.querySelector('textarea').value.split(',')
      : [...form.querySelectorAll('input')].map((i) => i.value);
  const row = text.map((t) => Number(t.trim()));
  if (row.length !== width || row.some((v) => !Number.isFinite(v)))
    throw new Error(`Expected ${width} numbers but the form holds ${row.length} (or one is not a number)`);
  return { inputs: [{ name, datatype: 'FP32', shape: [1, width], data: row }] };
}

/** What the outputs say: the class (with its probability) or the value(s). */
function describePrediction(card, outputs) {
  const labelOutput = outputs.find((o) => o.datatype === 'BYTES');
  const scores = outputs.find((o) => o.name === card.output.name)?.data ?? [];
  const labels = card.output.labels;
  if (labels && scores.length === 1 && labels.length === 2) {
    const p = scores[0];
    return `${p >= 0.5 ? labels[1] : labels[0]} (P(${labels[1]}) = ${number(p)})`;
  }
  if (labels && scores.length === labels.length) {
    let best = 0;
    for (let j = 1; j < scores.length; j++) if (scores[j] > scores[best]) best = j;
    return `${labels[best]} (${number(scores[best])})`;
  }
  if (labelOutput) return `${labelOutput.name}: ${labelOutput.data.join(', ')}`;
  const named = outputs.find((o) => o.datatype !== 'BYTES' && o.name !== card.output.name);
  const shown = named ?? outputs[0];
  return `${shown.name}: ${shown.data.map(number).join(', ')}`;
}

async function run(event) {
  event.preventDefault();
  $('message').textContent = '';
  const card = state.card;
  const { name, version } = state.selected;
  const body = requestBody(card);
  const answer = await api('POST', `${path(name, version)}/infer`, body);
  $('prediction').textContent = describePrediction(card, answer.outputs);
  if (card.explain) {
    const explained = await api('POST', `${path(name, version)}/explain`, body);
    drawAttributions(explained.method, explained.explanations[0]);
  }
  await loadStats();
}

/** The attributions as ranked horizontal bars (by raw column when the model has a pipeline). */
function drawAttributions(method, e) {
  const all = e.columns
    ? e.columns.map((c) => ({ name: c.column, value: c.attribution }))
    : e.features.map((f, i) => ({ name: f, value: e.attributions[i] }));
  const rows = all.sort((a, b) => Math.abs(b.value) - Math.abs(a.value)).slice(0, TOP_ATTRIBUTIONS);
  const chart = Plot.plot({
    width: 640,
    height: 40 + 24 * rows.length,
    marginLeft: 150,
    x: { label: `${method} attribution (output ${e.output}: ${number(e.value)}, base ${number(e.base)})`, grid: true },
    y: { label: null, domain: rows.map((r) => r.name) },
    color: { domain: ['raises', 'lowers'], range: ['#d1495b', '#2e86ab'], legend: true },
    marks: [
      Plot.barX(rows, {
        x: 'value',
        y: 'name',
        fill: (r) => (r.value >= 0 ? 'raises' : 'lowers'),
        title: (r) => `${r.name}: ${r.value}`,
      }),
      Plot.ruleX([0]),
    ],
  });
  const figure = $('attributions');
  figure.replaceChildren(chart);
  figure.dataset.method = method;
  figure.dataset.bars = String(rows.length);
}

/** Loss and metrics per epoch, one line each. */
function drawHistory(history) {
  const figure = $('history');
  if (!history.length) {
    figure.replaceChildren(element('p', 'No training history was saved with this model.'));
    figure.dataset.epochs = '0';
    return;
  }
  // A long history is drawn from about MAX_HISTORY_POINTS epochs, evenly spaced, the last kept.
  const step = Math.max(1, Math.ceil(history.length / MAX_HISTORY_POINTS));
  const shown = history.map((epoch, i) => [epoch, i]).filter(([, i]) => i % step === 0 || i === history.length - 1);
  const points = shown.flatMap(([epoch, i]) =>
    Object.entries(epoch)
      .filter(([, v]) => v !== null)
      .map(([metric, value]) => ({ epoch: i + 1, metric, value })),
  );
  const chart = Plot.plot({
    width: 640,
    height: 280,
    // Whole epochs only (a few runs' worth as ticks of their own).
    x: {
      label: 'epoch',
      grid: true,
      tickFormat: 'd',
      ...(history.length <= 12 ? { ticks: history.map((_, i) => i + 1) } : {}),
    },
    y: { label: 'value', grid: true },
    color: { legend: true },
    marks: [
      Plot.line(points, {
        x: 'epoch',
        y: 'value',
        stroke: 'metric',
        title: (p) => `${p.metric}, epoch ${p.epoch}: ${p.value}`,
      }),
      Plot.dot(points, {
        x: 'epoch',
        y: 'value',
        stroke: 'metric',
        r: 2,
        title: (p) => `${p.metric}, epoch ${p.epoch}: ${p.value}`,
      }),
    ],
  });
  figure.replaceChildren(chart);
  figure.dataset.epochs = String(history.length);
}

async function refresh() {
  $('message').textContent = '';
  await loadServer();
  const models = await loadModels();
  if (models[0]) await selectModel(models[0].name, models[0].version);
  document.body.dataset.ready = 'true';
}

$('token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  state.token = $('token').value;
  sessionStorage.setItem(TOKEN_KEY, state.token);
  $('token-form').hidden = true;
  refresh().catch(showError);
});
$('row-form').addEventListener('submit', (event) => run(event).catch(showError));
// The page's module runs after the deferred charting scripts (modules are deferred, in order).
refresh().catch(showError);

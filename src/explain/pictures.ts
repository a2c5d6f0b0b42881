/**
 * Explanations as pictures: a ranked bar chart for the terminal (Unicode eighth blocks, green for
 * attributions that raise the output and red for those that lower it when colour is on) and a
 * self-contained HTML report with an SVG bar chart per row. Both rank raw columns when the
 * explanation has them, else features.
 */
import type { Explanation } from './explanation.js';

/** One bar: a name and its attribution. */
export interface Bar {
  name: string;
  value: number;
}

/** The explanation's bars, largest |attribution| first: raw columns when it has them, else features. */
export function rankedBars(e: Explanation, top = Infinity): Bar[] {
  const bars = e.columns
    ? e.columns.map((c) => ({ name: c.column, value: c.attribution }))
    : e.attributions.map((value, i) => ({ name: e.features[i]!, value }));
  return bars.sort((a, b) => Math.abs(b.value) - Math.abs(a.value)).slice(0, top);
}

/** What the explanation measured from, and its own check, in one line. */
export function summaryLine(e: Explanation, label?: string): string {
  const check =
    e.completenessGap !== undefined
      ? `completeness gap ${e.completenessGap.toExponential(2)}`
      : e.additivityGap !== undefined
        ? `additivity gap ${e.additivityGap.toExponential(2)}${e.exact ? ', exact' : ''}`
        : e.r2 !== undefined
          ? `surrogate R² ${e.r2.toFixed(3)}`
          : '';
  const output = label === undefined ? `output ${e.output}` : `output ${e.output} (${label})`;
  return `${e.method}: ${output} = ${format(e.value)} from ${format(e.base)}${check ? `; ${check}` : ''}`;
}

function format(v: number): string {
  return Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(3) : v.toFixed(4);
}

const EIGHTHS = ['', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];

/** A bar `fraction` (0..1) of `width` cells long, in eighth-cell steps. */
function bar(fraction: number, width: number): string {
  const eighths = Math.round(Math.max(0, Math.min(1, fraction)) * width * 8);
  return '█'.repeat(Math.floor(eighths / 8)) + EIGHTHS[eighths % 8]!;
}

/**
 * The terminal chart: a summary line, then one line per bar, name, signed value and a bar scaled
 * to the largest |attribution|. `color` adds ANSI colours (green raises, red lowers the output).
 */
export function terminalChart(
  e: Explanation,
  options: { top?: number; width?: number; color?: boolean; label?: string } = {},
): string[] {
  const bars = rankedBars(e, options.top ?? 20);
  const width = options.width ?? 40;
  const largest = Math.max(...bars.map((b) => Math.abs(b.value)), Number.MIN_VALUE);
  const nameWidth = Math.min(32, Math.max(...bars.map((b) => b.name.length), 4));
  const lines = [summaryLine(e, options.label)];
  for (const b of bars) {
    const name = b.name.length > nameWidth ? `${b.name.slice(0, nameWidth - 1)}…` : b.name.padEnd(nameWidth);
    const value = `${b.value >= 0 ? '+' : '-'}${format(Math.abs(b.value))}`.padStart(11);
    const drawn = bar(Math.abs(b.value) / largest, width);
    const colored = options.color ? `\x1b[${b.value >= 0 ? 32 : 31}m${drawn}\x1b[0m` : drawn;
    lines.push(`  ${name} ${value} ${colored}`);
  }
  return lines;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** One explanation as an SVG bar chart (positive bars right of the axis, negative left). */
export function svgChart(e: Explanation, top = 20): string {
  const bars = rankedBars(e, top);
  const rowHeight = 22;
  const labelWidth = 180;
  const half = 220;
  const width = labelWidth + 2 * half + 90;
  const height = bars.length * rowHeight + 10;
  const axis = labelWidth + half;
  const largest = Math.max(...bars.map((b) => Math.abs(b.value)), Number.MIN_VALUE);
  const parts = bars.map((b, i) => {
    const y = 5 + i * rowHeight;
    const length = (Math.abs(b.value) / largest) * half;
    const x = b.value >= 0 ? axis : axis - length;
    const fill = b.value >= 0 ? '#2e7d32' : '#c62828';
    return [
      `<text x="${labelWidth - 6}" y="${y + 15}" text-anchor="end">${escapeHtml(b.name)}</text>`,
      `<rect class="bar" data-name="${escapeHtml(b.name)}" data-value="${b.value}" x="${x.toFixed(1)}" y="${y + 3}" width="${length.toFixed(1)}" height="${rowHeight - 6}" fill="${fill}"/>`,
      `<text x="${b.value >= 0 ? axis + length + 4 : axis + 4}" y="${y + 15}">${escapeHtml(format(b.value))}</text>`,
    ].join('');
  });
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="13">` +
    `<line x1="${axis}" y1="0" x2="${axis}" y2="${height}" stroke="#888"/>${parts.join('')}</svg>`
  );
}

/** A self-contained HTML page: per explanation its summary, its chart and a table of every attribution. */
export function htmlReport(
  title: string,
  explanations: readonly Explanation[],
  labels: (string | undefined)[] = [],
): string {
  const sections = explanations.map((e, i) => {
    const rows = rankedBars(e)
      .map((b) => `<tr><td>${escapeHtml(b.name)}</td><td>${b.value}</td></tr>`)
      .join('');
    return (
      `<section><h2>Row ${i}</h2><p>${escapeHtml(summaryLine(e, labels[i]))}</p>${svgChart(e)}` +
      `<table><thead><tr><th>${e.columns ? 'column' : 'feature'}</th><th>attribution</th></tr></thead><tbody>${rows}</tbody></table></section>`
    );
  });
  return (
    `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>` +
    '<style>body{font-family:sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse}' +
    'td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}</style></head>' +
    `<body><h1>${escapeHtml(title)}</h1>${sections.join('')}</body></html>\n`
  );
}

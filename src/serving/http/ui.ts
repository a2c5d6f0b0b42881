/**
 * The /ui page's files (`maas serve --ui`): the page, its script and style from the package's ui/
 * folder, and the charting library (Observable Plot over d3) from their packages, read once at
 * start and served from memory. They hold no data, so they pass without credentials; everything
 * the page shows comes from the REST routes, with the token its user gives it.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { MaasError } from '../../core/errors.js';
import { packageRoot } from '../../core/package-root.js';

/** A file the page loads, as served. */
export interface UiAsset {
  type: string;
  bytes: Buffer;
}

/** What the page may load and run: its own files only; Plot's SVG sets style attributes. */
const PAGE_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/** Headers every /ui answer carries. */
export const UI_HEADERS: Record<string, string> = {
  'content-security-policy': PAGE_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

/** A package's file, found from its main entry (these packages export no subpaths). */
function packageFile(name: string, file: string): string {
  const main = createRequire(import.meta.url).resolve(name);
  // main is <package>/src/index.js for both d3 and @observablehq/plot
  return join(dirname(dirname(main)), file);
}

/** Reads the page's files: a missing one stops the start with a clear error. */
export async function loadUiAssets(): Promise<Map<string, UiAsset>> {
  const ui = join(packageRoot(), 'ui');
  const files: [string, string, string][] = [
    ['', join(ui, 'index.html'), 'text/html; charset=utf-8'],
    ['app.js', join(ui, 'app.js'), 'text/javascript; charset=utf-8'],
    ['app.css', join(ui, 'app.css'), 'text/css; charset=utf-8'],
    ['d3.min.js', packageFile('d3', 'dist/d3.min.js'), 'text/javascript; charset=utf-8'],
    ['plot.umd.min.js', packageFile('@observablehq/plot', 'dist/plot.umd.min.js'), 'text/javascript; charset=utf-8'],
  ];
  const assets = new Map<string, UiAsset>();
  for (const [name, path, type] of files) {
    try {
      assets.set(name, { type, bytes: await readFile(path) });
    } catch (error) {
      throw new MaasError(
        'MAAS_ERR_UI_ASSETS',
        `The /ui page needs ${path}, which cannot be read: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
  }
  return assets;
}

/**
 * Runs clang-format (the clang-format-node package's binary) over every C++ file in native/:
 * `--check` fails listing the files that differ, `--write` rewrites them in place.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';

const mode = process.argv[2];
if (mode !== '--check' && mode !== '--write') {
  console.error('usage: node scripts/clang-format.mjs --check|--write');
  process.exit(2);
}

const CXX = /\.(cc|h|inc|cu|cuh)$/;
function cxxFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return cxxFiles(path);
    return CXX.test(entry.name) ? [path] : [];
  });
}

const require = createRequire(import.meta.url);
const { clangFormatPath } = require('clang-format-node');
const files = cxxFiles('native').sort();
const args = mode === '--write' ? ['-i', ...files] : ['--dry-run', '--Werror', ...files];
try {
  execFileSync(clangFormatPath, args, { stdio: 'inherit' });
} catch {
  console.error(`clang-format: native/ differs from .clang-format; run npm run format`);
  process.exit(1);
}
console.log(`clang-format: ${files.length} files ${mode === '--write' ? 'formatted' : 'clean'}`);

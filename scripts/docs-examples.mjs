// Keeps the code in the guides equal to the scripts that were run: a line
// `<!-- example: docs/examples/NAME.ts -->` in a docs/*.md file is followed by a fenced block that
// this script rewrites with the file's text (--check: fail instead when one differs).
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const check = process.argv.includes('--check');
// Prettier puts a blank line between the marker and the block; either form is matched.
const marker = /^<!-- example: (\S+) -->\n\n?```(\w*)\n[\s\S]*?^```$/gm;
let stale = 0;
for (const name of readdirSync('docs').filter((f) => f.endsWith('.md'))) {
  const path = join('docs', name);
  const text = readFileSync(path, 'utf8');
  const next = text.replace(marker, (_, file, lang) => {
    const body = readFileSync(file, 'utf8').replace(/\n$/, '');
    return `<!-- example: ${file} -->\n\n\`\`\`${lang || 'ts'}\n${body}\n\`\`\``;
  });
  if (next === text) continue;
  stale++;
  if (check) console.error(`${path}: an example differs from its file (run node scripts/docs-examples.mjs)`);
  else writeFileSync(path, next);
}
if (check && stale > 0) process.exit(1);

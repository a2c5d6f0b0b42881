#!/usr/bin/env node
// The Dockerfile's rules, checked without Docker (hadolint cannot be installed here: it is a
// binary download). Prints each rule that fails and exits 1; run with `--quiet` for no output on
// success. The rules are what docs/deploy.md promises of the image:
//   - multi-stage: a build stage with the toolchain, a runtime stage copying from it;
//   - every base image pinned to a version (no `latest`, no untagged image);
//   - apt lists removed in the same RUN that installs;
//   - the runtime stage runs as a non-root USER, EXPOSEs 8000 8001 8002, declares a VOLUME for
//     the repository, has a HEALTHCHECK on /v2/health/ready, and starts the server with
//     `--host 0.0.0.0` set explicitly;
//   - every COPY from the build context names a path that exists and that .dockerignore keeps.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The Dockerfile's instructions: continuation lines joined, comments dropped. */
export function instructions(text) {
  const out = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!pending && (line === '' || line.startsWith('#'))) continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    const space = full.indexOf(' ');
    out.push({ op: full.slice(0, space).toUpperCase(), args: full.slice(space + 1).trim() });
  }
  return out;
}

/** Whether .dockerignore's patterns (top-level names and globs of this repository's kind) exclude `path`. */
function ignored(patterns, path) {
  const first = path.replace(/^\.\//, '').split('/')[0];
  return patterns.some((p) => p === first || p === path || (p.startsWith('*') && first.endsWith(p.slice(1))));
}

/** The rules that `dockerfile` (with `.dockerignore` patterns) breaks, in words. */
export function check(dockerfile, dockerignore) {
  const problems = [];
  const steps = instructions(dockerfile);
  const patterns = dockerignore
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const stages = [];
  for (const step of steps) {
    if (step.op === 'FROM') stages.push({ from: step.args, steps: [] });
    else if (stages.length > 0) stages.at(-1).steps.push(step);
  }
  if (stages.length < 2) problems.push('not multi-stage: expected a build stage and a runtime stage');
  const args = Object.fromEntries(
    steps.filter((s) => s.op === 'ARG' && s.args.includes('=')).map((s) => s.args.split('=', 2)),
  );
  for (const { from } of stages) {
    const image = from.split(/\s+/)[0].replace(/\$\{(\w+)\}/g, (_, name) => args[name] ?? '');
    if (!image.includes(':') || image.endsWith(':latest') || image.endsWith(':'))
      problems.push(`base image not pinned to a version: ${from}`);
  }
  for (const step of steps)
    if (step.op === 'RUN' && /apt-get install/.test(step.args) && !/rm -rf \/var\/lib\/apt\/lists/.test(step.args))
      problems.push('apt-get install without removing /var/lib/apt/lists in the same RUN');
  const runtime = stages.at(-1)?.steps ?? [];
  const last = (op) => runtime.filter((s) => s.op === op).at(-1);
  const user = last('USER');
  if (!user || /^(root|0)(:|$)/.test(user.args)) problems.push('the runtime stage does not run as a non-root USER');
  const exposed = runtime.filter((s) => s.op === 'EXPOSE').flatMap((s) => s.args.split(/\s+/));
  for (const port of ['8000', '8001', '8002'])
    if (!exposed.includes(port)) problems.push(`port ${port} is not EXPOSEd`);
  if (!last('VOLUME')) problems.push('no VOLUME for the model repository');
  const health = last('HEALTHCHECK');
  if (!health || !health.args.includes('/v2/health/ready')) problems.push('no HEALTHCHECK on /v2/health/ready');
  const start = `${last('ENTRYPOINT')?.args ?? ''} ${last('CMD')?.args ?? ''}`;
  if (!/"--host",\s*"0\.0\.0\.0"/.test(start))
    problems.push('the server is not started with --host 0.0.0.0 set explicitly');
  if (!runtime.some((s) => s.op === 'COPY' && s.args.includes('--from=')))
    problems.push('the runtime stage copies nothing from the build stage');
  for (const { steps: stageSteps } of stages)
    for (const step of stageSteps) {
      if (step.op !== 'COPY' || step.args.includes('--from=')) continue;
      const parts = step.args.split(/\s+/).filter((p) => !p.startsWith('--'));
      for (const source of parts.slice(0, -1)) {
        if (!existsSync(join(root, source))) problems.push(`COPY ${source}: no such path in the repository`);
        else if (ignored(patterns, source))
          problems.push(`COPY ${source}: .dockerignore leaves it out of the build context`);
      }
    }
  return problems;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  // --dockerfile FILE and --dockerignore FILE check other files against this repository (tests).
  const option = (name, fallback) => {
    const at = process.argv.indexOf(name);
    return at === -1 ? fallback : process.argv[at + 1];
  };
  const problems = check(
    readFileSync(option('--dockerfile', join(root, 'Dockerfile')), 'utf8'),
    readFileSync(option('--dockerignore', join(root, '.dockerignore')), 'utf8'),
  );
  for (const p of problems) console.error(`Dockerfile: ${p}`);
  if (problems.length === 0 && !process.argv.includes('--quiet')) console.log('Dockerfile: every rule holds');
  process.exit(problems.length === 0 ? 0 : 1);
}

#!/usr/bin/env node
// Builds the node-gyp fallback (CPU only) from binding.gyp into build-gyp/, apart from the
// cmake-js build in build/, then loads it and runs one prediction against the cmake-js build.
// node-gyp always writes ./build, so it runs in a scratch copy of the sources.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, rmSync, existsSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const work = join(root, 'build-gyp');
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
for (const entry of ['binding.gyp', 'native', 'package.json'])
  cpSync(join(root, entry), join(work, entry), { recursive: true });
symlinkSync(join(root, 'node_modules'), join(work, 'node_modules'));

const require = createRequire(import.meta.url);
const nodeGyp =
  process.env.npm_config_node_gyp ??
  require.resolve('node-gyp/bin/node-gyp.js', { paths: [dirname(process.execPath) + '/../lib/node_modules/npm'] });
execFileSync(process.execPath, [nodeGyp, 'rebuild', '--jobs', 'max'], { cwd: work, stdio: 'inherit' });

const built = join(work, 'build', 'Release', 'maas.node');
if (!existsSync(built)) throw new Error(`node-gyp produced no ${built}`);
const addon = require(built);
const info = addon.cpuInfo();
const specs = [{ in: 4, out: 3, activation: 1, alpha: 0, hasBias: true }];
const w = Float32Array.from({ length: 12 }, (_, i) => (i % 5) - 2);
const b = Float32Array.of(0.5, -0.5, 1);
const run = (lib) => {
  const packed = new Uint8Array(lib.packedStackByteLength(specs));
  lib.packStack(specs, [w], [b], packed);
  const y = new Float32Array(3);
  new lib.DenseStackHandle(packed).predict(Float32Array.of(1, 2, 3, 4), 1, y);
  return Array.from(y);
};
const got = run(addon);
const cmakeBuild = join(root, 'build', 'Release', 'maas.node');
const want = existsSync(cmakeBuild) ? run(require(cmakeBuild)) : got;
if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`gyp build predicts ${got}, cmake build ${want}`);
// The fallback is the CPU-only build: it must say so rather than claim a CUDA backend.
const cuda = addon.cudaInfo();
if (cuda.compiled || !/built without CUDA/.test(cuda.reason))
  throw new Error(`gyp build reports CUDA: ${JSON.stringify(cuda)}`);
console.log(
  `build-gyp: ok (${built}; ISA ${info.isa}, kernel ${info.f32Kernel}; predict ${JSON.stringify(got)}; CUDA: ${cuda.reason})`,
);

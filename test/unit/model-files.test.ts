/**
 * Model files are untrusted: only a regular file under its size cap is read. Symbolic links,
 * FIFOs and devices are refused with MAAS_ERR_MODEL_FILE, without waiting on them.
 */
import { execFileSync } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dense, loadModel, sequential } from '../../src/index.js';
import { readRegularFile } from '../../src/io/files.js';
import { packageRoot } from '../../src/core/package-root.js';
import { errorOf } from '../helpers.js';

const FIXTURES = join(packageRoot(), 'test', 'fixtures');
const temp = () => mkdtemp(join(tmpdir(), 'maas-files-'));
const fifo = (path: string) => execFileSync('mkfifo', [path]);

async function savedModel(): Promise<string> {
  const dir = await temp();
  await sequential({ layers: [dense({ units: 2, inputShape: [3] })] }).save(dir);
  return dir;
}

describe('model files', () => {
  it('refuses a model.json that is a symbolic link', async () => {
    const real = await savedModel();
    const dir = await temp();
    await symlink(join(real, 'model.json'), join(dir, 'model.json'));
    expect(await errorOf(() => loadModel(dir))).toMatch(
      /^MAAS_ERR_MODEL_FILE: Expected a model.json at .* to be a regular file, not a symbolic link$/,
    );
  });

  it('refuses a weights file linked to /dev/zero', async () => {
    const dir = await savedModel();
    const manifest = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8')) as {
      weightsManifest: { paths: string[] }[];
    };
    const shard = manifest.weightsManifest[0]!.paths[0]!;
    await rm(join(dir, shard));
    await symlink('/dev/zero', join(dir, shard));
    expect(await errorOf(() => loadModel(dir))).toMatch(/^MAAS_ERR_MODEL_FILE: .*not a symbolic link$/);
  });

  it('checks the weights files against the manifest before reading them: sizes, and each path once', async () => {
    const dir = await savedModel();
    const json = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8')) as {
      weightsManifest: { paths: string[]; weights: { shape: number[] }[] }[];
    };
    const group = json.weightsManifest[0]!;
    const original = JSON.stringify(json);
    group.weights[0]!.shape = [3, 2_000_000_000]; // claims 24 GB that the 32-byte file does not hold
    await writeFile(join(dir, 'model.json'), JSON.stringify(json));
    expect(await errorOf(() => loadModel(dir))).toMatch(
      /^MAAS_ERR_MODEL_FORMAT: The weights files named by model.json hold 32 bytes but its weightsManifest needs 24000000008$/,
    );
    const twice = JSON.parse(original) as typeof json;
    twice.weightsManifest[0]!.paths.push(twice.weightsManifest[0]!.paths[0]!);
    await writeFile(join(dir, 'model.json'), JSON.stringify(twice));
    expect(await errorOf(() => loadModel(dir))).toBe(
      'MAAS_ERR_MODEL_FORMAT: The weightsManifest of model.json names a weights file twice',
    );
  });

  it('refuses a FIFO named model.json, model.onnx or model.h5 at once instead of waiting on it', async () => {
    const dir = await temp();
    for (const name of ['model.json', 'model.onnx', 'model.h5']) {
      fifo(join(dir, name));
      expect(await errorOf(() => loadModel(join(dir, name)))).toMatch(
        /^MAAS_ERR_MODEL_FILE: Expected .* to be a regular file, not a FIFO$/,
      );
    }
  });

  it('refuses a directory or device where a file belongs, and a file above its cap', async () => {
    const dir = await temp();
    await copyFile(join(FIXTURES, 'onnx', 'hls4ml_two_layer_keras', 'model.onnx'), join(dir, 'm.onnx'));
    expect(await errorOf(() => readRegularFile('/dev/zero', 1024, 'a test file'))).toBe(
      'MAAS_ERR_MODEL_FILE: Expected a test file at /dev/zero to be a regular file, not a device',
    );
    expect(await errorOf(() => readRegularFile(dir, 1024, 'a test file'))).toMatch(/not a directory$/);
    expect(await errorOf(() => readRegularFile(join(dir, 'm.onnx'), 10, 'a test file'))).toMatch(
      /^MAAS_ERR_MODEL_FILE: Expected a test file of at most 10 bytes at .* but it holds \d+$/,
    );
    expect(await errorOf(() => readRegularFile(join(dir, 'none'), 10, 'a test file'))).toMatch(
      /^MAAS_ERR_MODEL_NOT_FOUND: /,
    );
    await writeFile(join(dir, 'small'), 'abc');
    expect((await readRegularFile(join(dir, 'small'), 10, 'a test file')).toString()).toBe('abc');
  });
});

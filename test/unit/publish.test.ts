/**
 * Publishing a model as the next version: the files and version.json written whole under the next
 * number, loadable, nothing left staged; racing publishers take distinct numbers; refusals coded.
 */
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dense, loadModel, sequential } from '../../src/index.js';
import { publishVersion } from '../../src/lifecycle/publish.js';

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function repository(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'maas-publish-'));
  dirs.push(root);
  await mkdir(join(root, 'm', '3'), { recursive: true });
  return root;
}

const model = () => sequential({ layers: [dense({ units: 2, inputShape: [3] })] });

describe('publishVersion', () => {
  it('writes the model and its record as the next version, whole', async () => {
    const root = await repository();
    const m = model();
    const version = await publishVersion(root, 'm', m, {
      source: 'update',
      parent: 3,
      dataSha256: 'ab'.repeat(32),
      metrics: { accuracy: 0.91 },
    });
    expect(version).toBe(4);
    const record = JSON.parse(await readFile(join(root, 'm', '4', 'version.json'), 'utf8'));
    expect(record).toMatchObject({ source: 'update', parent: 3, metrics: { accuracy: 0.91 } });
    expect(Date.parse(record.created)).toBeGreaterThan(0);
    const loaded = await loadModel(join(root, 'm', '4'));
    expect(loaded.getWeights().map((t) => t.values)).toEqual(m.getWeights().map((t) => t.values));
    expect((await readdir(join(root, 'm'))).sort()).toEqual(['3', '4']);
  });

  it('gives racing publishers distinct numbers', async () => {
    const root = await repository();
    const versions = await Promise.all(
      Array.from({ length: 6 }, () => publishVersion(root, 'm', model(), { source: 'race' })),
    );
    expect([...versions].sort((a, b) => a - b)).toEqual([4, 5, 6, 7, 8, 9]);
    expect((await readdir(join(root, 'm'))).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('refuses a missing model directory, a bad name and a record without a source', async () => {
    const root = await repository();
    await expect(publishVersion(root, 'nope', model(), { source: 'x' })).rejects.toMatchObject({
      code: 'MAAS_ERR_MODEL_NOT_FOUND',
    });
    await expect(publishVersion(root, '../m', model(), { source: 'x' })).rejects.toMatchObject({
      code: 'MAAS_ERR_ARG_TYPE',
    });
    await expect(publishVersion(root, 'm', model(), {} as never)).rejects.toMatchObject({ code: 'MAAS_ERR_ARG_TYPE' });
  });
});

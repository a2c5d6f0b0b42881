/**
 * `maas rollback`: an earlier version's exact bytes published as the next version, atomically,
 * and served again (here by a server in explicit mode, after a load); refusals for a model with
 * one version, an unknown target, a link inside a version, and a bad model name.
 */
import { readdir, readFile, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HttpInferenceClient } from '../../src/client/index.js';
import { runRollback } from '../../src/cli/rollback.js';
import { addVersion, inputs, smallModel, startServer, tempRepository } from './server-helpers.js';

const D = 5;

async function files(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await readdir(dir)).sort()) out[name] = (await readFile(join(dir, name))).toString('base64');
  return out;
}

describe('maas rollback', () => {
  it('publishes the previous version byte for byte as the next, and a reload serves it', async () => {
    const root = await tempRepository();
    const good = smallModel(D, 2, 1);
    const bad = smallModel(D, 2, 2);
    await addVersion(root, 'm', 1, good, { max_batch_size: 8 });
    await addVersion(root, 'm', 2, bad);
    const server = await startServer(root, { modelControlMode: 'explicit', loadModels: ['m'] });
    try {
      const rest = new HttpInferenceClient(`http://127.0.0.1:${server.httpPort}`);
      const x = inputs(3, D, 7);
      const ask = async () =>
        (await rest.infer({ model: 'm', inputs: [{ name: 'input', datatype: 'FP32', shape: [3, D], data: x }] }))
          .outputs[0]!.data;
      expect(Array.from((await ask()) as ArrayLike<number>)).toEqual(Array.from(bad.predict(x).values));
      const lines: string[] = [];
      const next = await runRollback('m', { modelRepository: root, print: (l) => lines.push(l) });
      expect(next).toBe(3);
      expect(lines[0]).toBe(
        "rolled back m: version 3 holds version 1's files, byte for byte (version 2 stays on disk)",
      );
      expect(await files(join(root, 'm', '3'))).toEqual(await files(join(root, 'm', '1')));
      expect((await readdir(join(root, 'm'))).filter((n) => n.startsWith('.'))).toEqual([]);
      await rest.loadModel('m');
      expect(Array.from((await ask()) as ArrayLike<number>)).toEqual(Array.from(good.predict(x).values));
      // --to takes any version: back to 2, as version 4.
      expect(await runRollback('m', { modelRepository: root, to: 2, print: () => {} })).toBe(4);
      expect(await files(join(root, 'm', '4'))).toEqual(await files(join(root, 'm', '2')));
    } finally {
      await server.close();
    }
  });

  it('refuses a model with one version, an unknown target, a link in a version, and a bad name', async () => {
    const root = await tempRepository();
    await addVersion(root, 'one', 1, smallModel(D, 1, 3));
    const code = (p: Promise<unknown>, c: string) => expect(p).rejects.toMatchObject({ code: c });
    const none = { modelRepository: root, print: () => {} };
    await code(runRollback('one', none), 'MAAS_ERR_ARG_RANGE');
    await code(runRollback('missing', none), 'MAAS_ERR_MODEL_NOT_FOUND');
    await code(runRollback('../one', none), 'MAAS_ERR_ARG_RANGE');
    await addVersion(root, 'one', 2, smallModel(D, 1, 4));
    await code(runRollback('one', { ...none, to: 7 }), 'MAAS_ERR_ARG_RANGE');
    await symlink('/etc/passwd', join(root, 'one', '1', 'extra'));
    await code(runRollback('one', none), 'MAAS_ERR_ARG_RANGE');
    // Nothing half-made is left behind.
    expect((await readdir(join(root, 'one'))).sort()).toEqual(['1', '2']);
  });
});

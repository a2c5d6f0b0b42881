/**
 * What the file fuzzer found, pinned: a model.json whose fields have the wrong type is refused
 * with MAAS_ERR_MODEL_FORMAT, never a bare TypeError or RangeError, whether a reader checks the
 * field (batch_input_shape, class_name) or the opener's safety net catches what a reader did not
 * foresee (a null layer).
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MaasError } from '../../src/core/errors.js';
import { openModelFile } from '../../src/io/open.js';

/** A model directory whose model.json holds `topology` (a value, or JSON text as it is). */
async function modelJson(topology: unknown): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'maas-malformed-'));
  const text = typeof topology === 'string' ? topology : JSON.stringify(topology);
  await writeFile(join(dir, 'model.json'), `{"modelTopology":${text},"weightsManifest":[]}`);
  return dir;
}

async function refusal(dir: string): Promise<MaasError> {
  const error: unknown = await openModelFile(dir).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(MaasError);
  expect((error as MaasError).code).toBe('MAAS_ERR_MODEL_FORMAT');
  return error as MaasError;
}

const dense = (config: object) => ({ class_name: 'Sequential', config: { layers: [{ class_name: 'Dense', config }] } });

describe('model.json fields of the wrong type', () => {
  it('batch_input_shape that is not an array (it was "shape.join is not a function")', async () => {
    for (const shape of ['x', {}, 7]) {
      const error = await refusal(await modelJson(dense({ units: 2, batch_input_shape: shape })));
      expect(error.message).toMatch(/Expected a rank-2 input shape \[null, features\] but the file has /);
    }
    const error = await refusal(await modelJson(dense({ units: 2, batch_input_shape: [null, 3, 'x'] })));
    expect(error.message).toMatch(/but the file has \[null,3,string\]/);
  });

  it('a class_name nested 10 000 deep (it overflowed the stack: a RangeError)', async () => {
    const deep = '['.repeat(10_000) + ']'.repeat(10_000);
    const error = await refusal(await modelJson(`{"class_name":${deep},"config":{"layers":[]}}`));
    expect(error.message).toMatch(/Expected a Sequential model but the topology's class is an array/);
  });

  it("an activation named after an Object.prototype member (it reached the addon, which refused it: 'a bug above it')", async () => {
    for (const activation of ['constructor', 'toString', '__proto__']) {
      const error = await refusal(await modelJson(dense({ units: 2, batch_input_shape: [null, 3], activation })));
      expect(error.message).toMatch(new RegExp(`activation '${activation}' is not one maas implements`));
    }
  });

  it("a reader's oversight (a null layer) is still MAAS_ERR_MODEL_FORMAT, its TypeError the cause", async () => {
    const error = await refusal(await modelJson({ class_name: 'Sequential', config: { layers: [null] } }));
    expect(error.message).toMatch(/^Cannot read the model file .*: /);
    expect(error.cause).toBeInstanceOf(TypeError);
  });
});

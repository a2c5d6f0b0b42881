/**
 * predict's pooled outputs: a large output freed by the collector comes back for the next call of
 * its size (checked in a child process with --expose-gc), small ones are ordinary arrays, and a
 * model's predictions are the same through the pool as through a caller's buffer.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { addonPath, native } from '../../src/native/index.js';
import { dense, initializers, sequential } from '../../src/index.js';
import { openPackedModel } from '../../src/model/packed.js';

describe('output pool', () => {
  it('reuses a collected large buffer, and releaseFreeMemory empties the pool', () => {
    // Up to 50 turns of the event loop (no clock): each drops a marked buffer, collects, and asks
    // for one of about its size; a pooled buffer comes back still marked.
    const script = `
      const a = require(${JSON.stringify(addonPath())});
      const floats = 1 << 20;
      let turns = 0, reused = false;
      const turn = () => {
        const y = a.allocOutput(floats - 1000 * turns);
        reused = y[0] === 12345;
        if (reused || ++turns === 50) {
          const sizes = [y.length, a.allocOutput(4).length, a.allocOutput(1 << 22).length];
          console.log(JSON.stringify({ reused, pooledFrom: a.pooledOutputMinFloats, sizes, released: typeof a.releaseFreeMemory() }));
          return;
        }
        y[0] = 12345;
        gc();
        setImmediate(turn); // the buffer's finalizer runs from the event loop
      };
      turn();`;
    const out = JSON.parse(execFileSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8' })) as {
      reused: boolean;
      pooledFrom: number;
      sizes: number[];
      released: string;
    };
    expect(out.pooledFrom).toBeGreaterThan(0);
    expect(out.pooledFrom).toBeLessThanOrEqual((1 << 20) - 50_000);
    expect(out.reused).toBe(true);
    expect(out.sizes.slice(1)).toEqual([4, 1 << 22]);
    expect(out.sizes[0]).toBeGreaterThan((1 << 20) - 50_000);
    expect(out.released).toBe('boolean');
  });

  it('refuses a size that is not a positive count, with a coded error', () => {
    for (const bad of [0, -1, 2 ** 50, Number.NaN])
      expect(() => native.allocOutput(bad)).toThrow(expect.objectContaining({ code: expect.stringMatching(/^MAAS_ERR_ARG/) }));
  });

  it('predicts the same into pooled outputs as into a caller buffer, call after call', () => {
    const m = sequential({
      layers: [dense({ units: 2048, activation: 'relu', inputShape: [64], kernelInitializer: initializers.glorotUniform({ seed: 4 }) })],
    });
    const x = Float32Array.from({ length: 300 * 64 }, (_, i) => Math.sin(i));
    const handle = openPackedModel(m.packed());
    const want = new Float32Array(300 * 2048);
    handle.predict(x, 300, want);
    for (let i = 0; i < 20; i++) expect(m.predict(x).values).toEqual(want);
    handle.dispose();
    m.dispose();
  });
});
